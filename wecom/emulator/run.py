"""Run the emulator in the foreground: shared by `python -m wecom.emulator` and `flask wecom emulator`."""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any, Callable, Sequence

from .server import Emulator

DEFAULTS = {
    "corp_id": ("WECOM_CORP_ID", "wwdemo0000000001"),
    "contact_secret": ("WECOM_CONTACT_SECRET", "demo-contact-secret"),
    "agent_id": ("WECOM_AGENT_ID", "1000002"),
    "agent_secret": ("WECOM_AGENT_SECRET", "demo-agent-secret"),
    "token": ("WECOM_TOKEN", "DemoToken"),
    "encoding_aes_key": ("WECOM_ENCODING_AES_KEY", "DemoEncodingAesKey0123456789abcdefghijklmno"),
}


def parse_seed(value: str | None) -> str | int | None:
    """'demo', an int, or nothing (empty corp)."""
    if value in (None, "", "none"):
        return None
    if value == "demo":
        return "demo"
    try:
        return int(str(value).replace("_", ""))
    except ValueError:
        raise ValueError(f"--seed must be 'demo' or a number, not {value!r}") from None


def _echo(text: str) -> None:
    print(text, flush=True)


def serve(emu: Emulator, host: str, port: int, echo: Callable[[str], None] = _echo,
          stop: threading.Event | None = None) -> None:
    """Start, print the URL and a summary, and block until Ctrl-C (or `stop` is set)."""
    emu.start(host=host, port=port)
    summary = emu.state.summary()
    echo(f"WeCom emulator at {emu.url}  (corp {emu.corp_id}, seeded in {emu.seed_seconds:.1f}s)")
    echo("summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    if emu.callback_url:
        echo(f"callbacks to {emu.callback_url}")
    stop = stop or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        echo("stopping")
    finally:
        emu.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wecom.emulator", description="A local WeCom emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", default=None, help="demo, or a number of customers")
    parser.add_argument("--callback-url", default=None)
    for name, (env, default) in DEFAULTS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=os.environ.get(env, default),
                            help=f"default: ${env} or {default!r}")
    args = parser.parse_args(argv)
    try:
        seed = parse_seed(args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    emu = Emulator(corp_id=args.corp_id, contact_secret=args.contact_secret, agent_id=args.agent_id,
                   agent_secret=args.agent_secret, token=args.token, encoding_aes_key=args.encoding_aes_key,
                   callback_url=args.callback_url, seed=seed)
    serve(emu, args.host, args.port)


def application() -> Any:
    """The WSGI app of an emulator configured from the environment, to serve it under gunicorn (one
    worker process: the state lives in memory; threads are fine):

        EMULATOR_SEED=1000 EMULATOR_CALLBACK_URL=http://127.0.0.1:8000/wecom/callback \\
            gunicorn -w 1 -k gthread --threads 8 "wecom.emulator.run:application()"
    """
    settings = {name: os.environ.get(env, default) for name, (env, default) in DEFAULTS.items()}
    emu = Emulator(**settings, callback_url=os.environ.get("EMULATOR_CALLBACK_URL") or None,
                   seed=parse_seed(os.environ.get("EMULATOR_SEED")))
    return emu.wsgi
