#!/usr/bin/env python3
"""Runs a rendered pod's containers on this machine, as a kubelet and container runtime would,
for scripts/validate-deploy.sh (no cluster or container engine runs on the CI machine).

    pod_run.py prepare --rendered R.yaml --workload KIND/NAME --images IMAGES.json --dir DIR
                       [--secret NAME/KEY=VALUE]... [--env NAME=VALUE]...
    pod_run.py exec SPEC.json [--check-paths]          (as root, in a mount namespace of its own)

`prepare` (needs PyYAML) reads the pod template of the workload (or of a ToolHive MCPServer,
completed as the operator does) and writes, under DIR:
  - volumes/NAME for each volume: an emptyDir (mode 0777; group fsGroup and setgid when the pod
    sets fsGroup, as the kubelet does), or a ConfigMap laid out as the kubelet's atomic writer
    does (KEY -> ..data/KEY, ..data -> ..TIMESTAMP/) from the ConfigMap in the rendered output;
  - CONTAINER.json for each init container and for the `mcp` container: the image (a stand-in
    from IMAGES.json), the mounts, the user and groups, the security context, the environment
    (the image's, then the container's: $(VAR) references expanded as the kubelet does, the
    Downward API's pod name, namespace and uid, Secrets from --secret, then each --env, which
    stands in for what this machine needs and a cluster would not) and the command (command or
    the image's ENTRYPOINT, then args or the image's CMD).

`exec` (Debian's python3 with python3-seccomp) enters that container: it mounts the image's root
(an overlay: this machine's root, or a Dockerfile's runtime stage replayed on a Debian root with
scripts/integration/dockerfile_replay.py), the volumes at their mount paths (read-only where
the pod says), makes the root read-only when readOnlyRootFilesystem is set, mounts /proc and
/dev, chroots, drops every capability from the bounding set, takes the user, groups and
supplementary groups, sets no_new_privs (allowPrivilegeEscalation: false), loads the
RuntimeDefault stand-in seccomp profile (containers-common's seccomp.json, the default of CRI-O
and Podman; the caps-conditional rules applied as for a container without capabilities), and
execs the command. With --check-paths it instead checks, as the container's user, that what
the mcp-redirect variables and the command name exists: every LD_PRELOAD entry readable,
MCP_REDIRECT_CONFIG readable, the log's directory writable, the command executable.
"""

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY = os.path.join(HERE, "..", "integration", "dockerfile_replay.py")
POD_UID = "5f0c1d9e-7a43-4c2b-9a6e-0d2b8e41c7a1"


# ---- prepare ------------------------------------------------------------------------------------

def load_pod(rendered, workload):
    import yaml

    kind, name = workload.split("/", 1)
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            namespace = doc["metadata"].get("namespace", "default")
            if kind == "MCPServer":
                sys.path.insert(0, HERE)
                from check_pods import toolhive_pod

                return toolhive_pod(doc), namespace, configmaps
            return doc["spec"]["template"], namespace, configmaps
    sys.exit(f"pod_run: no {workload} in {rendered}")


def expand(value, mapping):
    """The kubelet's $(VAR) expansion: defined names replaced, $$ an escaped $, the rest kept."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i + 2:]:
            end = value.index(")", i + 2)
            name = value[i + 2:end]
            out.append(mapping[name] if name in mapping else value[i:end + 1])
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def container_env(container, pod_name, namespace, configmaps, secrets):
    mapping = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            mapping.update(configmaps[source["configMapRef"]["name"]])
    for entry in container.get("env") or []:
        if "value" in entry:
            mapping[entry["name"]] = expand(entry["value"], mapping)
            continue
        ref = entry["valueFrom"]
        if "fieldRef" in ref:
            field = ref["fieldRef"]["fieldPath"]
            mapping[entry["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace,
                                      "metadata.uid": POD_UID}[field]
        elif "secretKeyRef" in ref:
            key = f"{ref['secretKeyRef']['name']}/{ref['secretKeyRef']['key']}"
            if key not in secrets:
                sys.exit(f"pod_run: the pod needs the Secret key {key}: give it with --secret")
            mapping[entry["name"]] = secrets[key]
        elif "configMapKeyRef" in ref:
            mapping[entry["name"]] = configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        else:
            sys.exit(f"pod_run: env {entry['name']}: {list(ref)} is not supported")
    return mapping


def make_volumes(pod, configmaps, directory):
    fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
    paths = {}
    for volume in pod["spec"].get("volumes") or []:
        path = os.path.join(directory, "volumes", volume["name"])
        os.makedirs(path)
        if "emptyDir" in volume:
            os.chmod(path, 0o777)
            if fs_group is not None:
                os.chown(path, 0, fs_group)
                os.chmod(path, 0o2777)
        elif "configMap" in volume:
            data = configmaps[volume["configMap"]["name"]]
            stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.000000001")
            os.mkdir(os.path.join(path, stamp))
            for key, text in data.items():
                with open(os.path.join(path, stamp, key), "w") as f:
                    f.write(text)
                os.chmod(os.path.join(path, stamp, key), volume["configMap"].get("defaultMode", 0o644))
                os.symlink(os.path.join("..data", key), os.path.join(path, key))
            os.symlink(stamp, os.path.join(path, "..data"))
            os.chmod(path, 0o755)
        else:
            sys.exit(f"pod_run: volume {volume['name']}: only emptyDir and configMap are emulated")
        paths[volume["name"]] = path
    return paths


def prepare(args):
    pod, namespace, configmaps = load_pod(args.rendered, args.workload)
    with open(args.images) as f:
        images = json.load(f)
    secrets = dict(item.split("=", 1) for item in args.secret)
    extra_env = dict(item.split("=", 1) for item in args.env)
    pod_name = f"{args.workload.split('/', 1)[1]}-5d8f7b9c6-x7k2p"
    os.makedirs(args.dir, exist_ok=True)
    volumes = make_volumes(pod, configmaps, args.dir)
    psc = pod["spec"].get("securityContext") or {}
    containers = [c for c in pod["spec"].get("initContainers") or []] + \
        [c for c in pod["spec"]["containers"] if c["name"] == "mcp"]
    for container in containers:
        image = images.get(container["image"])
        if image is None:
            sys.exit(f"pod_run: no stand-in for the image {container['image']} in {args.images}")
        sc = container.get("securityContext") or {}
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": pod_name}
        env.update(image.get("env", {}))
        env.update(container_env(container, pod_name, namespace, configmaps, secrets))
        env.update(extra_env)
        argv = (container.get("command") or image.get("entrypoint", [])) + \
            (container.get("args") if "args" in container else ([] if container.get("command") else image.get("cmd", [])))
        uid = sc.get("runAsUser", psc.get("runAsUser", image.get("uid", 0)))
        groups = [g for g in [psc.get("fsGroup")] + (psc.get("supplementalGroups") or []) if g is not None]
        spec = {
            "name": container["name"],
            "image": image,
            "argv": argv,
            "env": env,
            "workdir": container.get("workingDir") or image.get("workdir", "/"),
            "uid": uid,
            "gid": sc.get("runAsGroup", psc.get("runAsGroup", image.get("gid", uid))),
            "groups": groups,
            "read_only_root": sc.get("readOnlyRootFilesystem", False),
            "no_new_privs": sc.get("allowPrivilegeEscalation") is False,
            "drop_all_caps": "ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
            "seccomp": (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type"),
            "mounts": [{"source": volumes[m["name"]], "target": m["mountPath"], "read_only": m.get("readOnly", False)}
                       for m in container.get("volumeMounts") or []],
            "scratch": os.path.join(args.dir, "scratch-" + container["name"]),
        }
        with open(os.path.join(args.dir, container["name"] + ".json"), "w") as f:
            json.dump(spec, f, indent=2)
        print(f"{container['name']}: {' '.join(argv)} (uid {uid})")


# ---- exec ---------------------------------------------------------------------------------------

def mount(*argv):
    subprocess.run(["mount", *argv], check=True)


def build_root(spec):
    """Mounts the image's root file system at SCRATCH/root; returns (root, image env)."""
    image, scratch = spec["image"], spec["scratch"]
    os.makedirs(scratch, exist_ok=True)
    mount("-t", "tmpfs", "tmpfs", scratch)
    for sub in ("upper", "work", "root"):
        os.mkdir(os.path.join(scratch, sub))
    root = os.path.join(scratch, "root")
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir={image.get('base', '/')},upperdir={scratch}/upper,workdir={scratch}/work", root)
    env = {}
    if "dockerfile" in image:
        state = os.path.join(scratch, "state.json")
        subprocess.run([sys.executable, REPLAY, "build", "--dockerfile", image["dockerfile"],
                        "--context", image["context"], "--root", root, "--state", state],
                       check=True, stdout=subprocess.DEVNULL)
        with open(state) as f:
            env = json.load(f)["env"]
    for path in image.get("chmod_755", []):
        os.chmod(root + path, 0o755)
    for target, source in image.get("files", {}).items():
        os.makedirs(os.path.dirname(root + target), exist_ok=True)
        shutil.copy2(source, root + target)
    return root, env


def enter(spec):
    root, image_env = build_root(spec)
    for m in spec["mounts"]:
        target = root + m["target"]
        os.makedirs(target, exist_ok=True)
        mount("--bind", m["source"], target)
        if m["read_only"]:
            mount("-o", "remount,bind,ro", target)
    for special in ("/etc/hosts", "/etc/resolv.conf"):
        if not os.path.exists(root + special):
            open(root + special, "w").close()
        mount("--bind", special, root + special)
    if spec["read_only_root"]:
        mount("-o", "remount,ro", root)
    mount("-t", "proc", "proc", root + "/proc")
    mount("--rbind", "/dev", root + "/dev")
    env = dict(image_env)
    env.update(spec["env"])
    os.chroot(root)
    os.chdir(spec["workdir"])
    libc = ctypes.CDLL(None, use_errno=True)
    if spec["drop_all_caps"]:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
        for cap in range(last + 1):
            libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])  # a non-zero uid clears the permitted and effective capabilities
    if spec["no_new_privs"]:
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            sys.exit("pod_run: PR_SET_NO_NEW_PRIVS failed")
    return env


def runtime_default(profile_path):
    """containers-common's seccomp.json as a runtime builds it for a container without
    capabilities, on x86-64: the filter, to load once in the container."""
    import seccomp

    with open(profile_path) as f:
        profile = json.load(f)
    actions = {"SCMP_ACT_ALLOW": lambda r: seccomp.ALLOW,
               "SCMP_ACT_ERRNO": lambda r: seccomp.ERRNO(r.get("errnoRet") or profile.get("defaultErrnoRet") or 1),
               "SCMP_ACT_LOG": lambda r: seccomp.LOG}
    ops = {"SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT,
           "SCMP_CMP_LE": seccomp.LE, "SCMP_CMP_GT": seccomp.GT, "SCMP_CMP_GE": seccomp.GE,
           "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}
    default = seccomp.ERRNO(profile.get("defaultErrnoRet") or 1)
    f = seccomp.SyscallFilter(defaction=default)
    for arch in (seccomp.Arch.X86, seccomp.Arch.X32):
        try:
            f.add_arch(arch)
        except Exception:
            pass
    kernel = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    for rule in profile["syscalls"]:
        includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
        if includes.get("caps"):
            continue  # the container has no capabilities
        if includes.get("arches") and not set(includes["arches"]) & {"amd64", "x86", "x32"}:
            continue
        if "amd64" in (excludes.get("arches") or []):
            continue
        if includes.get("minKernel") and kernel < tuple(int(x) for x in includes["minKernel"].split(".")[:2]):
            continue
        action = actions[rule["action"]](rule)
        if action == default:
            continue
        conditions = [seccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0))
                      for a in rule.get("args") or []]
        for name in rule["names"]:
            try:
                f.add_rule(action, name, *conditions)
            except Exception:
                pass  # a name this architecture or libseccomp does not know
    return f


def check_paths(spec, env):
    problems, seen = [], []

    def need(path, mode, what):
        seen.append(path)
        if not os.access(path, mode):
            problems.append(f"{what} {path}: {'missing' if not os.path.lexists(path) else 'no access'}")

    for entry in env.get("LD_PRELOAD", "").replace(":", " ").split():
        need(entry, os.R_OK, "LD_PRELOAD entry")
    if "MCP_REDIRECT_CONFIG" in env:
        need(env["MCP_REDIRECT_CONFIG"], os.R_OK, "MCP_REDIRECT_CONFIG")
    if env.get("MCP_REDIRECT_LOG", "").startswith("/"):
        need(os.path.dirname(env["MCP_REDIRECT_LOG"]), os.W_OK | os.X_OK, "the log's directory")
    program = spec["argv"][0]
    if "/" not in program:
        program = shutil.which(program, path=env.get("PATH", DEFAULT_PATH)) or program
    need(program, os.X_OK, "the command")
    who = f"uid {os.getuid()}, gid {os.getgid()}, groups {os.getgroups()}"
    if problems:
        print(f"as {who}: " + "; ".join(problems))
        return 1
    print(f"as {who}: present and usable: {', '.join(seen)}")
    return 0


def exec_container(args):
    with open(args.spec) as f:
        spec = json.load(f)
    # Built before the chroot: the module and the profile are this machine's, not the image's.
    seccomp_filter = None
    if spec["seccomp"] == "RuntimeDefault" and not args.check_paths:
        seccomp_filter = runtime_default(args.seccomp_profile)
    env = enter(spec)
    if args.check_paths:
        sys.exit(check_paths(spec, env))
    if seccomp_filter is not None:
        seccomp_filter.load()  # after setuid, with no_new_privs, as runc does
    try:
        os.execvpe(spec["argv"][0], spec["argv"], env)
    except OSError as e:
        sys.stderr.write(f"pod_run: exec {spec['argv'][0]}: {e}\n")
        os._exit(127)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--rendered", required=True)
    p.add_argument("--workload", required=True, help="KIND/NAME")
    p.add_argument("--images", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--secret", action="append", default=[], metavar="NAME/KEY=VALUE")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    e = sub.add_parser("exec")
    e.add_argument("spec")
    e.add_argument("--check-paths", action="store_true")
    e.add_argument("--seccomp-profile", default="/usr/share/containers/seccomp.json")
    args = parser.parse_args()
    prepare(args) if args.command == "prepare" else exec_container(args)


if __name__ == "__main__":
    main()
