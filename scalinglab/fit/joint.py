def fit_joint(*a, **k): raise NotImplementedError
class JointFit: pass
