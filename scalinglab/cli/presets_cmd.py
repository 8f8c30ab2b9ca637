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
    for name in preset_names():
        study, _ = load_study(name)
        print(f"{name:<14} {study.description}")
    return 0
