"""`scalinglab presets`: the built-in studies, one line each."""

HELP = "list the built-in studies (presets)"


def register(p):
    p.add_argument("--show", metavar="NAME", help="print one preset's TOML (to copy and edit)")


def run(args) -> int:
    from scalinglab.config import load_study, preset_names, preset_text

    if args.show:
        load_study(args.show)  # unknown names get the usual one-line error
        print(preset_text(args.show), end="")
        return 0
    names = preset_names()
    width = max(map(len, names), default=0)  # one column, however long the longest name
    for name in names:
        study, _ = load_study(name)
        print(f"{name:<{width}}  {study.description}")
    return 0
