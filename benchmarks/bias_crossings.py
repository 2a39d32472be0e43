"""Which avaudit modules a `bias` call enters after its logits exist: every call made from commands.bias's own
frame once audit() has returned, and the avaudit modules entered below it, in order (sys.setprofile).

    python benchmarks/bias_crossings.py sample_videos/ /tmp/out /tmp/cache   # run it twice: the second is warm

At c54111d: 18 module changes over 8 distinct modules, commands > labels > audits.bias > ... > commands >
media.window > commands > audits.layerstats > ... > commands > runs > outputs (down into the decisions and
back up to the pipeline's label and window rules). Now: 16 changes over 7 modules, commands > audits.bias
(with audits.decisions and audits.uncertainty below it) > commands > audits.layerstats > runs > outputs: the
pipeline hands over plain data (inference.pipeline.Audit: rows, window, record), so after the logits a call
only decides, then writes, and never climbs back to the pipeline.
"""
import sys
from pathlib import Path

import avaudit.commands as commands

data, out, cache = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
entered, direct = [], []
state = {"bias": None, "after_logits": False}


def profile(frame, event, arg):
    if event != "call":
        return
    module = frame.f_globals.get("__name__", "")
    if frame.f_code.co_name == "bias" and module == "avaudit.commands" and state["bias"] is None:
        state["bias"] = frame
        return
    if state["bias"] is None:
        return
    if frame.f_back is state["bias"] and frame.f_code.co_name == "audit":
        state["after_logits"] = "pending"
        return
    if state["after_logits"] is True and module.startswith("avaudit"):
        if frame.f_back is state["bias"]:
            direct.append(f"{module}.{frame.f_code.co_name}")
        if not entered or entered[-1] != module:
            entered.append(module)
    if state["after_logits"] == "pending" and frame.f_back is state["bias"]:
        state["after_logits"] = True
        if module.startswith("avaudit"):
            direct.append(f"{module}.{frame.f_code.co_name}")
            entered.append(module)


sys.setprofile(profile)
commands.bias(data, out=out, cache_dir=cache, workers=0)
sys.setprofile(None)
print("called from commands.bias after audit():", len(direct))
for name in direct:
    print("  ", name)
print("module changes below it:", len(entered), "distinct modules:", len(set(entered)))
print("  ", " > ".join(m.replace("avaudit.", "") for m in entered))
