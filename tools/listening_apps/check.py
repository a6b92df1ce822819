"""Install exported listening tests into the real webMUSHRA and BeaqleJS, answer them in headless
Chromium, and read the answers back with `audio-vq listening-results`: the README's install and
results steps, run.

    python tools/listening_apps/check.py --webmushra <webMUSHRA tree> --beaqlejs <BeaqleJS tree> \\
        <export dir> [<export dir> ...]

Needs php (its built-in server runs the apps' result services), Debian's chromium and the npm
package puppeteer-core (``npm install --prefix ~/.cache/audio_vq/node puppeteer-core``). The
app trees are copied to a temporary folder, never changed. For each export and app it prints
the pages or test sets built, the errors the app showed, the result files and what
listening-results made of them (two scripted listeners, ann and bob).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = Path(os.environ.get("AUDIO_VQ_NODE_DIR", "~/.cache/audio_vq/node")).expanduser()
LISTENERS = ("ann", "bob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    p = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "php.log", "w"),
    )
    time.sleep(1)
    return p, f"http://127.0.0.1:{port}"


def node(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")}
    return subprocess.run(["node", str(HERE / script), *args], capture_output=True, text=True, timeout=300, env=env)


def results(answers: Path, export: Path, out: Path) -> str:
    r = subprocess.run(
        ["audio-vq", "listening-results", f"results={answers}", f"key={export}", f"out={out}", "screening=false"],
        capture_output=True,
        text=True,
    )
    return (r.stdout.strip() or r.stderr.strip()).splitlines()[-1]


def webmushra(tree: Path, exports: list[Path], work: Path) -> None:
    app = work / "webMUSHRA"
    shutil.copytree(tree, app, ignore=shutil.ignore_patterns(".git"))
    (app / "results").mkdir(exist_ok=True)
    for export in exports:
        name = export.name
        shutil.copytree(export / "serve", app / "configs" / "resources" / "audio" / name)
        shutil.copy(export / "serve" / "webmushra.yaml", app / "configs" / f"{name}.yaml")
    server, url = serve(app)
    try:
        for export in exports:
            kind = json.loads((export / "private" / "export.json").read_text())["kind"]
            for who in LISTENERS:
                r = node("webmushra.js", f"{url}/index.html?config={export.name}.yaml", who)
                print(f"webMUSHRA {kind} ({who}): " + " | ".join(r.stdout.strip().splitlines()[:3]) + r.stderr[-300:])
            test_id = json.loads((export / "private" / "export.json").read_text())["test_id"]
            for csv_file in sorted((app / "results" / test_id).glob("*.csv")):
                print(
                    f"  {csv_file.name}: {len(csv_file.read_text().splitlines()) - 1} row(s) -> "
                    + results(csv_file, export, work / f"wm_{export.name}_analysis")
                )
        errors = [line for line in (app / "php.log").read_text().splitlines() if "Fatal" in line]
        print("  php: " + (errors[0] if errors else "no errors"))
    finally:
        server.terminate()


def beaqlejs(tree: Path, exports: list[Path], work: Path) -> None:
    app = work / "beaqlejs"
    shutil.copytree(tree, app, ignore=shutil.ignore_patterns(".git"))
    page = (app / "index.html").read_text()
    server, url = serve(app)
    try:
        for export in exports:
            config = export / "serve" / "beaqlejs_config.js"
            if not config.exists():
                print(f"BeaqleJS: {export.name}: no BeaqleJS config (mos)")
                continue
            shutil.copytree(export / "serve", app / "audio" / export.name)
            shutil.copy(config, app / "config" / f"{export.name}.js")
            test_class = config.read_text().split("new ", 1)[1].split("(", 1)[0]
            (app / f"index_{export.name}.html").write_text(
                page.replace("config/example_config_mushra.js", f"config/{export.name}.js").replace(
                    "testHandle = new MushraTest(TestConfig);", f"testHandle = new {test_class}(TestConfig);"
                )
            )
            downloads = work / f"bq_{export.name}"
            downloads.mkdir()
            for who in LISTENERS:
                r = node("beaqlejs.js", f"{url}/index_{export.name}.html", who)
                (downloads / f"{who}.txt").write_text(r.stdout)
                print(f"BeaqleJS {test_class} ({who}): {r.stderr.strip()[-300:]}")
            print("  downloads -> " + results(downloads, export, work / f"bq_{export.name}_analysis"))
    finally:
        server.terminate()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exports", nargs="+", type=Path, help="folders written by audio-vq export-listening-test")
    ap.add_argument("--webmushra", type=Path, help="a webMUSHRA source tree (github.com/audiolabs/webMUSHRA)")
    ap.add_argument("--beaqlejs", type=Path, help="a BeaqleJS source tree (github.com/HSU-ANT/beaqlejs)")
    args = ap.parse_args()
    exports = [e.resolve() for e in args.exports]
    with tempfile.TemporaryDirectory() as tmp:
        if args.webmushra:
            webmushra(args.webmushra.resolve(), exports, Path(tmp))
        if args.beaqlejs:
            beaqlejs(args.beaqlejs.resolve(), exports, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
