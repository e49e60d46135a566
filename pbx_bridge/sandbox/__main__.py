"""``python -m pbx_bridge.sandbox``: build the root, start/stop/inspect a background Asterisk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pbx_bridge.cli.progress import progress_for
from pbx_bridge.sandbox.errors import SandboxError
from pbx_bridge.sandbox.instance import AGENTS, TRUNK, AsteriskSandbox, SandboxPorts
from pbx_bridge.sandbox.root import ensure_root


def _describe(sandbox: AsteriskSandbox) -> str:
    agents = ", ".join(f"{ext}=127.0.0.1:{port}" for ext, port in sandbox.agent_ports.items())
    return "\n".join(
        [
            f"name:          {sandbox.name}",
            f"pid:           {sandbox.pid}",
            f"SIP (trunk):   {sandbox.sip_address}",
            f"ARI URL:       {sandbox.ari_url}",
            f"ARI user:      {sandbox.ari_username}",
            f"ARI password:  {sandbox.ari_password}",
            f"agents (SIP):  {agents}",
            f"RTP ports:     {sandbox.ports.rtp_start}-{sandbox.ports.rtp_end}",
            f"recordings:    {sandbox.recordings_dir}",
            f"log:           {sandbox.log_path}",
        ]
    )


def _ports(args: argparse.Namespace, root: Path) -> SandboxPorts:
    picked = SandboxPorts.pick_free(root)
    agents = picked.agents
    if args.agent_ports:
        values = [int(v) for v in args.agent_ports.split(",")]
        if len(values) != len(AGENTS):
            raise SandboxError(f"--agent-ports needs {len(AGENTS)} ports, for {AGENTS}")
        agents = dict(zip(AGENTS, values, strict=True)) | {TRUNK: picked.agents[TRUNK]}
    rtp_start, rtp_end = picked.rtp_start, picked.rtp_end
    if args.rtp_start:
        rtp_start, rtp_end = args.rtp_start, args.rtp_start + 199
    return SandboxPorts(
        ari=args.ari_port or picked.ari,
        sip=args.sip_port or picked.sip,
        rtp_start=rtp_start,
        rtp_end=rtp_end,
        agents=agents,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbx_bridge.sandbox")
    parser.add_argument(
        "--cache", type=Path, help="sandbox root (default: $PBX_BRIDGE_SANDBOX_CACHE)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the cached Asterisk root if missing")
    up = sub.add_parser("up", help="start an instance in the background")
    up.add_argument("--name", default="demo")
    up.add_argument("--prompts", type=Path, help="built prompts folder (tr/, en/, manifest.json)")
    up.add_argument("--ari-port", type=int)
    up.add_argument("--sip-port", type=int)
    up.add_argument("--rtp-start", type=int, help="first of 200 RTP ports")
    up.add_argument("--agent-ports", help="three ports for agents 100,101,102, comma-separated")
    up.add_argument("--ari-password")
    for name in ("down", "status"):
        command = sub.add_parser(name)
        command.add_argument("--name", default="demo")
    args = parser.parse_args(argv)

    try:
        with progress_for("sandbox root") as progress:
            root = ensure_root(args.cache, on_phase=progress.phase)
        if args.command == "build":
            print(root)
            return 0
        if args.command == "up":
            try:
                existing = AsteriskSandbox.load(args.name, root)
            except SandboxError:
                existing = None
            if existing is not None and existing.is_running():
                print(f"already running\n{_describe(existing)}")
                return 0
            sandbox = AsteriskSandbox(
                args.name, _ports(args, root), args.ari_password, args.prompts, root
            )
            sandbox.start()
            sandbox.detach()
            print(_describe(sandbox))
            return 0
        sandbox = AsteriskSandbox.load(args.name, root)
        if args.command == "down":
            sandbox.stop()
            print(f"{args.name}: stopped")
            return 0
        running = sandbox.is_running()
        print(_describe(sandbox) + f"\nrunning:       {'yes' if running else 'no'}")
        return 0 if running else 3
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
