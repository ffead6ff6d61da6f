"""The chat page's weight: the script a browser must load before the sign-in form can show.

The page is built as ``scripts/setup`` builds it (``scripts/build-page``, esbuild with code
splitting); esbuild's metafile says which chunks the entry imports statically (loaded before any
of the page runs) and which it leaves to ``import()`` (loaded when needed). A slow phone pays for
every byte before the form: the budget holds it down, and the parts the form does not need must
stay out of it. ``bench/page_load.py`` measures what that means in time (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

from standins.processes import ROOT

BUDGET_GZIP = 60_000  # bytes; it was 37 KB when set (the single bundle before it: 228 KB)
# Loaded after the sign-in form, when needed: Firestore (and re2js, webchannel), Markdown,
# highlight.js, App Check.
LATER = ("@firebase/firestore", "re2js", "webchannel", "marked", "dompurify", "highlight.js", "@firebase/app-check")


def build(out: Path) -> tuple[Path, dict[str, dict[str, object]]]:
    meta = out / "meta.json"
    subprocess.run(
        [str(ROOT / "scripts" / "build-page"), str(out / "js"), f"--metafile={meta}"], cwd=ROOT, check=True, timeout=180
    )
    outputs = json.loads(meta.read_text())["outputs"]
    return out / "js", {str((ROOT / name).resolve()): output for name, output in outputs.items()}


def before_sign_in(outputs: dict[str, dict[str, object]], entry: Path) -> list[str]:
    """The entry and every chunk it imports statically, transitively."""
    found, todo = [], [str(entry.resolve())]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.append(name)
        imports = outputs[name].get("imports", [])
        assert isinstance(imports, list)
        todo += [str((ROOT / i["path"]).resolve()) for i in imports if i["kind"] == "import-statement"]
    return found


def test_script_before_sign_in_is_within_its_budget_and_leaves_the_chat_for_later(tmp_path: Path) -> None:
    js, outputs = build(tmp_path)
    first = before_sign_in(outputs, js / "app.js")
    sizes = {Path(name).name: len(gzip.compress(Path(name).read_bytes(), 6)) for name in first}
    later = sum(len(gzip.compress(p.read_bytes(), 6)) for p in js.glob("*.js")) - sum(sizes.values())
    print(f"before sign-in: {sum(sizes.values()):,} bytes gzip {sizes}; loaded later: {later:,} bytes gzip")
    assert sum(sizes.values()) <= BUDGET_GZIP
    inputs = [source for name in first for source in outputs[name]["inputs"]]  # type: ignore[union-attr]
    assert not [source for source in inputs if any(part in source for part in LATER)]
    # ... and they are in the build, behind import(): the chat, App Check, highlight.js.
    dynamic = {
        Path(i["path"]).stem.rsplit("-", 1)[0]  # "chat-HASH.js": chat
        for output in outputs.values()
        for i in output.get("imports", [])  # type: ignore[union-attr]
        if i["kind"] == "dynamic-import"
    }
    assert dynamic == {"chat", "app-check", "code-highlight"}
