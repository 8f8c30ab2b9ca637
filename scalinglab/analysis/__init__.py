"""Analysis of stored trials: best-fit points, laws, and (later) diagnoses and plans."""
