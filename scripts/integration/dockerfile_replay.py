#!/usr/bin/env python3
"""Replays a Dockerfile's last stage in a chroot, for scripts/integration-test.sh (no container
engine runs on the project's CI machine).

    dockerfile_replay.py build-commands --dockerfile F
    dockerfile_replay.py build --dockerfile F --context DIR --root ROOT --state STATE.json
    dockerfile_replay.py run --root ROOT --state STATE.json [--env NAME=VALUE]... [-- ARGS...]

`build-commands` prints the RUN commands of the stages before the last, one a line: the test
runs them natively in the build context (the build stage's `COPY . .`).

`build` applies the last stage's instructions to ROOT, a Debian root file system standing in
for the stage's base image: COPY (from the build context, or --from an earlier stage whose
`COPY . <dir>` put the context at <dir>: that stage's outputs are taken from the context, where
the test has built them natively), ENV, RUN (chroot ROOT /bin/sh -c, as the current USER, with
the ENV so far), USER, WORKDIR, ENTRYPOINT and CMD. ARG, LABEL and EXPOSE are ignored; other
instructions are an error. What `docker run` needs is written to STATE.

`run` is `docker run IMAGE [ARGS]`: in the chroot, as the image's USER (resolved in ROOT's
/etc/passwd), in its WORKDIR, with only the image's ENV plus HOME and each --env, it executes
ENTRYPOINT + (ARGS or CMD). Mounts (proc, /dev, a config) are the caller's business; this
script changes nothing outside ROOT. Must run as root. Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def logical_lines(path):
    """The Dockerfile's instructions: comments dropped, continuation lines joined."""
    lines, current = [], ""
    with open(path) as f:
        for raw in f:
            stripped = raw.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            if current and stripped.startswith("#"):
                continue  # a comment inside a continued instruction
            if stripped.endswith("\\"):
                current += stripped[:-1] + " "
                continue
            current += stripped
            lines.append(current)
            current = ""
    if current:
        lines.append(current)
    return lines


def stages(path):
    result = []
    for line in logical_lines(path):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append({"base": words[0], "name": name, "instructions": []})
        elif not result:
            if keyword != "ARG":
                sys.exit(f"dockerfile_replay: {keyword} before the first FROM")
        else:
            result[-1]["instructions"].append((keyword, rest))
    return result


def exec_form(text):
    """ENTRYPOINT/CMD/RUN arguments: the JSON exec form, or the shell form."""
    if text.startswith("["):
        return json.loads(text)
    return ["/bin/sh", "-c", text]


def env_pairs(text):
    """ENV NAME=VALUE... (values may be quoted) or the legacy ENV NAME VALUE."""
    words = shlex.split(text)
    if words and "=" not in words[0]:
        return [(words[0], text.split(None, 1)[1] if len(words) > 1 else "")]
    return [tuple(w.split("=", 1)) for w in words]


def context_dir_of(stage):
    """Where a stage's `COPY . <dir>` put the build context (relative <dir> to its WORKDIR)."""
    workdir = "/"
    for keyword, rest in stage["instructions"]:
        if keyword == "WORKDIR":
            workdir = os.path.join(workdir, rest)
        elif keyword == "COPY":
            words = [w for w in rest.split() if not w.startswith("--")]
            if len(words) == 2 and words[0] in (".", "./"):
                return os.path.normpath(os.path.join(workdir, words[1]))
    return None


def resolve_user(root, user):
    """(uid, gid, home) of USER in ROOT's /etc/passwd ("name", "uid" or "uid:gid")."""
    name, _, group = user.partition(":")
    with open(os.path.join(root, "etc/passwd")) as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            if fields[0] == name or fields[2] == name:
                uid, gid, home = int(fields[2]), int(fields[3]), fields[5]
                break
        else:
            if not name.isdigit():
                sys.exit(f"dockerfile_replay: no user {name!r} in the image's /etc/passwd")
            uid, gid, home = int(name), int(name), "/"
    if group:
        gid = int(group) if group.isdigit() else gid
    return uid, gid, home


def run_in_root(root, argv, env, user, workdir, replace=False):
    """Runs argv chrooted in ROOT as USER in WORKDIR with exactly ENV (plus HOME)."""
    uid, gid, home = resolve_user(root, user) if user else (0, 0, "/root")
    env = dict(env)
    env.setdefault("HOME", home)
    env.setdefault("PATH", DEFAULT_PATH)

    def enter():
        os.chroot(root)
        os.chdir(workdir or "/")
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    if replace:
        enter()
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as e:
            sys.stderr.write(f"dockerfile_replay: exec {argv[0]}: {e}\n")
            os._exit(127)
    return subprocess.run(argv, env=env, preexec_fn=enter).returncode


def copy_into(root, sources, dest):
    target = os.path.join(root, dest.lstrip("/"))
    is_dir = dest.endswith("/") or len(sources) > 1
    for source in sources:
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
            continue
        path = os.path.join(target, os.path.basename(source)) if is_dir else target
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copy2(source, path)
        print(f"  COPY {source} -> {dest if not is_dir else path[len(root):]}")


def build(args):
    all_stages = stages(args.dockerfile)
    final = all_stages[-1]
    by_name = {s["name"]: s for s in all_stages if s["name"]}
    env, user, workdir, entrypoint, cmd = {}, None, "/", [], []
    print(f"replaying the last stage (FROM {final['base']}) on {args.root}")
    for keyword, rest in final["instructions"]:
        if keyword == "COPY":
            words = rest.split()
            options = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            sources, dest = paths[:-1], paths[-1]
            stage_from = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
            resolved = []
            for source in sources:
                if stage_from:
                    stage = by_name.get(stage_from)
                    inside = context_dir_of(stage) if stage else None
                    if not inside or not (source + "/").startswith(inside + "/"):
                        sys.exit(f"dockerfile_replay: cannot map {source} of stage {stage_from} to the context")
                    source = os.path.join(args.context, os.path.relpath(source, inside))
                else:
                    source = os.path.join(args.context, source)
                matches = sorted(glob.glob(source))
                if not matches:
                    sys.exit(f"dockerfile_replay: COPY source {source} does not exist")
                resolved.extend(matches)
            copy_into(args.root, resolved, dest)
        elif keyword == "ENV":
            for name, value in env_pairs(rest):
                env[name] = value
                print(f"  ENV {name}={env[name]}")
        elif keyword == "RUN":
            print(f"  RUN {rest}")
            code = run_in_root(args.root, exec_form(rest), env, user, workdir)
            if code != 0:
                sys.exit(f"dockerfile_replay: RUN failed with exit status {code}: {rest}")
        elif keyword == "USER":
            user = rest
            print(f"  USER {user}")
        elif keyword == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, rest))
            os.makedirs(os.path.join(args.root, workdir.lstrip("/")), exist_ok=True)
            print(f"  WORKDIR {workdir}")
        elif keyword == "ENTRYPOINT":
            entrypoint = exec_form(rest)
            cmd = []  # as Docker does: an ENTRYPOINT resets an inherited CMD
            print(f"  ENTRYPOINT {entrypoint}")
        elif keyword == "CMD":
            cmd = exec_form(rest)
            print(f"  CMD {cmd}")
        elif keyword in ("ARG", "LABEL", "EXPOSE", "STOPSIGNAL"):
            continue
        else:
            sys.exit(f"dockerfile_replay: {keyword} is not supported")
    state = {"env": env, "user": user, "workdir": workdir, "entrypoint": entrypoint, "cmd": cmd}
    with open(args.state, "w") as f:
        json.dump(state, f, indent=2)


def run(args):
    with open(args.state) as f:
        state = json.load(f)
    env = dict(state["env"])
    for item in args.env:
        name, value = item.split("=", 1)
        env[name] = value
    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    argv = state["entrypoint"] + (command or state["cmd"])
    run_in_root(args.root, argv, env, state["user"], state["workdir"], replace=True)


def build_commands(args):
    for stage in stages(args.dockerfile)[:-1]:
        for keyword, rest in stage["instructions"]:
            if keyword == "RUN":
                print(shlex.join(json.loads(rest)) if rest.startswith("[") else rest)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("build-commands")
    c.add_argument("--dockerfile", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dockerfile", required=True)
    b.add_argument("--context", required=True)
    b.add_argument("--root", required=True)
    b.add_argument("--state", required=True)
    r = sub.add_parser("run")
    r.add_argument("--root", required=True)
    r.add_argument("--state", required=True)
    r.add_argument("--env", action="append", default=[])
    r.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "build-commands":
        return build_commands(args)
    if os.geteuid() != 0:
        sys.exit("dockerfile_replay: must run as root (chroot)")
    build(args) if args.command == "build" else run(args)


if __name__ == "__main__":
    main()
