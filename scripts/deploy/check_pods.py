#!/usr/bin/env python3
"""Static checks on the rendered Kubernetes manifests, for scripts/validate-deploy.sh.

    check_pods.py [--write-pod-templates OUT.yaml] RENDERED.yaml...

For every pod template in the files (Deployment, StatefulSet, DaemonSet, Job, CronJob, and a
ToolHive MCPServer's spec.podTemplateSpec, completed the way the operator completes it), checks:

- the restricted Pod Security Standard (the checks of pod-security-admission's `restricted`
  level, latest version): runAsNonRoot true, no runAsUser 0, seccompProfile RuntimeDefault or
  Localhost, allowPrivilegeEscalation false and capabilities dropping ALL (adding at most
  NET_BIND_SERVICE) on every container, init containers included, no privileged, host
  namespaces, hostPath or hostPort, only the volume types restricted allows, no procMount or
  sysctls, no AppArmor or SELinux options it forbids;
- our own requirements: a numeric non-root user and a read-only root file system on the init
  container and the `mcp` container;
- mcp-redirect's pieces: the init container `mcp-redirect-install` running `mcp-redirect install
  --to DIR`, DIR an emptyDir mounted read-only in the `mcp` container at the same path, the config
  (MCP_REDIRECT_CONFIG) a file inside a mounted ConfigMap that holds that key (and that the
  output defines), the log (MCP_REDIRECT_LOG) on a writable emptyDir, the pod's name, namespace
  and uid from the Downward API, and either LD_PRELOAD naming DIR/libmcp_redirect.so first or the
  command starting with DIR/mcp-redirect run --mode supervise --.

--write-pod-templates writes each MCPServer's completed pod template as a v1 PodTemplate, for
kubernetes-validate (which has no schema for the CRD itself).

Prints one line per pod template and check group, PASS or FAIL with the reason, and exits 1 if
anything failed. Needs PyYAML.
"""

import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
POD_ENV = {"MCP_REDIRECT_POD_NAME": "metadata.name",
           "MCP_REDIRECT_POD_NAMESPACE": "metadata.namespace",
           "MCP_REDIRECT_POD_UID": "metadata.uid"}


def pod_templates(docs):
    """(label, namespace, pod template) for every pod template in the documents."""
    for doc in docs:
        kind, meta = doc.get("kind"), doc.get("metadata", {})
        label = f"{kind}/{meta.get('name')}"
        if kind in WORKLOADS:
            yield label, meta.get("namespace"), doc["spec"]["template"]
        elif kind == "CronJob":
            yield label, meta.get("namespace"), doc["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "MCPServer":
            yield label, meta.get("namespace"), toolhive_pod(doc)


def toolhive_pod(doc):
    """The pod ToolHive's operator makes from an MCPServer: podTemplateSpec, with the `mcp`
    container given the server's image and args (pkg/container/kubernetes/client.go,
    configureMCPContainer); security fields the template leaves unset get the operator's
    restricted defaults, so only what the template sets is checked here."""
    spec = doc["spec"]
    template = yaml.safe_load(yaml.safe_dump(spec.get("podTemplateSpec") or {}))
    pod = template.setdefault("spec", {})
    containers = pod.setdefault("containers", [])
    mcp = next((c for c in containers if c.get("name") == "mcp"), None)
    if mcp is None:
        mcp = {"name": "mcp"}
        containers.append(mcp)
    mcp["image"] = spec["image"]
    if spec.get("args"):
        mcp["args"] = spec["args"]
    mcp["stdin"] = spec.get("transport", "stdio") == "stdio"
    return template


def restricted(pod):
    """Violations of the restricted Pod Security Standard."""
    problems = []
    spec = pod.get("spec", {})
    psc = spec.get("securityContext") or {}
    containers = [("initContainers", c) for c in spec.get("initContainers") or []] + \
        [("containers", c) for c in spec.get("containers") or []] + \
        [("ephemeralContainers", c) for c in spec.get("ephemeralContainers") or []]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"spec.{field} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {', '.join(sorted(kinds))} not allowed")
    if psc.get("sysctls"):
        problems.append("pod sysctls set")
    if psc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"pod seccompProfile {pod_seccomp}")
    for where, c in containers:
        name = f"{where}[{c.get('name')}]"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{name}: hostPort")
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"{name}: procMount {sc['procMount']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities.drop lacks ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true (container or pod)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp or 'unset'} (container or pod)")
        selinux = sc.get("seLinuxOptions") or psc.get("seLinuxOptions") or {}
        if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t",
                                       "container_engine_t") or selinux.get("user") or selinux.get("role"):
            problems.append(f"{name}: seLinuxOptions not allowed")
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            problems.append(f"{name}: appArmorProfile {apparmor}")
    return problems


def effective_user(pod, container):
    psc = pod["spec"].get("securityContext") or {}
    sc = container.get("securityContext") or {}
    return sc.get("runAsUser", psc.get("runAsUser"))


def hardened(pod, container):
    """Ours, beyond restricted: numeric non-root user, read-only root."""
    problems = []
    uid = effective_user(pod, container)
    if not isinstance(uid, int) or uid == 0:
        problems.append(f"{container['name']}: no numeric non-root runAsUser (got {uid!r})")
    if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
        problems.append(f"{container['name']}: readOnlyRootFilesystem is not true")
    return problems


def mounts_of(container):
    return {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts") or []}


def volume_for(path, container, volumes):
    """(mount, volume) holding PATH in the container, the deepest mount first."""
    mounts = mounts_of(container)
    for mount_path in sorted(mounts, key=len, reverse=True):
        if path == mount_path or path.startswith(mount_path + "/"):
            mount = mounts[mount_path]
            return mount, volumes.get(mount["name"])
    return None, None


def mcp_redirect_pieces(pod, namespace, configmaps):
    problems = []
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    inits = [c for c in spec.get("initContainers") or [] if c.get("name") == "mcp-redirect-install"]
    mcp = next((c for c in spec.get("containers") or [] if c.get("name") == "mcp"), None)
    if not inits:
        return ["no init container mcp-redirect-install"]
    if mcp is None:
        return ["no container named mcp"]
    if not mcp.get("image"):
        problems.append("the mcp container has no image (the workload's container is not named mcp?)")
    init = inits[0]
    argv = (init.get("command") or []) + (init.get("args") or [])
    if len(argv) != 4 or argv[0].rsplit("/", 1)[-1] != "mcp-redirect" or argv[1:3] != ["install", "--to"]:
        return problems + [f"init container runs {argv}, not mcp-redirect install --to DIR"]
    target = argv[3].rstrip("/")
    init_mount, init_volume = volume_for(target, init, volumes)
    if init_volume is None or "emptyDir" not in init_volume or init_mount["mountPath"].rstrip("/") != target:
        problems.append(f"{target} is not an emptyDir mounted in the init container")
        return problems
    if init_mount.get("readOnly"):
        problems.append(f"{target} is read-only in the init container")
    app_mount = mounts_of(mcp).get(target)
    if app_mount is None or app_mount["name"] != init_mount["name"]:
        problems.append(f"the mcp container does not mount the {init_mount['name']} volume at {target}")
    elif not app_mount.get("readOnly"):
        problems.append(f"{target} is not read-only in the mcp container")

    env = {e["name"]: e for e in mcp.get("env") or []}
    names = [e["name"] for e in mcp.get("env") or []]
    for name in set(names):
        if names.count(name) > 1:
            problems.append(f"env {name} is defined {names.count(name)} times")
    config = env.get("MCP_REDIRECT_CONFIG", {}).get("value")
    if not config:
        problems.append("no MCP_REDIRECT_CONFIG")
    else:
        mount, volume = volume_for(config, mcp, volumes)
        if volume is None or "configMap" not in volume:
            problems.append(f"MCP_REDIRECT_CONFIG {config} is not on a ConfigMap volume")
        else:
            key = config[len(mount["mountPath"].rstrip("/")) + 1:]
            if mount.get("subPath"):
                problems.append(f"{config}: a subPath mount never sees ConfigMap updates")
            cm_name = volume["configMap"]["name"]
            data = configmaps.get((namespace, cm_name))
            if data is None:
                problems.append(f"ConfigMap {cm_name} is not in the output (namespace {namespace})")
            elif key not in data:
                problems.append(f"ConfigMap {cm_name} has no key {key}")
    log = env.get("MCP_REDIRECT_LOG", {}).get("value")
    if not log or not log.startswith("/"):
        problems.append(f"MCP_REDIRECT_LOG is {log!r}, not a file")
    else:
        mount, volume = volume_for(log, mcp, volumes)
        if volume is None or "emptyDir" not in volume or mount.get("readOnly"):
            problems.append(f"the log {log} is not on a writable emptyDir")
    for name, field in POD_ENV.items():
        got = ((env.get(name, {}).get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if got != field:
            problems.append(f"{name} is not the Downward API's {field}")

    preload = env.get("LD_PRELOAD", {}).get("value")
    command = (mcp.get("command") or []) + (mcp.get("args") or [])
    supervised = command[:5] == [f"{target}/mcp-redirect", "run", "--mode", "supervise", "--"] and len(command) > 5
    if preload is not None:
        first = preload.replace(":", " ").split()[0] if preload.split() else ""
        if first != f"{target}/libmcp_redirect.so":
            problems.append(f"LD_PRELOAD {preload!r} does not name {target}/libmcp_redirect.so first")
    elif not supervised:
        problems.append(f"neither LD_PRELOAD nor a command starting {target}/mcp-redirect run --mode supervise --")
    problems += hardened(pod, init) + hardened(pod, mcp)
    how = "LD_PRELOAD" if preload is not None else "run --mode supervise"
    return problems, how


def main():
    args, out = sys.argv[1:], None
    if args[:1] == ["--write-pod-templates"]:
        out, args = args[1], args[2:]
    docs = []
    for path in args:
        with open(path) as f:
            docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    configmaps = {(d.get("metadata", {}).get("namespace"), d["metadata"]["name"]): d.get("data") or {}
                  for _, d in docs if d.get("kind") == "ConfigMap"}
    failed = checked = 0
    for path, doc in docs:
        for label, namespace, pod in pod_templates([doc]):
            checked += 1
            where = f"{path.rsplit('/', 1)[-1]}: {label}"
            problems = restricted(pod)
            if problems:
                failed += 1
                print(f"FAIL  {where}: restricted Pod Security Standard: {'; '.join(problems)}")
            else:
                n = len(pod["spec"].get("initContainers") or []) + len(pod["spec"].get("containers") or [])
                print(f"PASS  {where}: restricted Pod Security Standard ({n} containers)")
            result = mcp_redirect_pieces(pod, namespace, configmaps)
            problems, how = result if isinstance(result, tuple) else (result, None)
            if problems:
                failed += 1
                print(f"FAIL  {where}: mcp-redirect pieces: {'; '.join(problems)}")
            else:
                print(f"PASS  {where}: init container, read-only emptyDir, config from a ConfigMap, "
                      f"log on an emptyDir, Downward API, {how}; numeric non-root users, read-only roots")
    if out:
        templates = [{"apiVersion": "v1", "kind": "PodTemplate",
                      "metadata": {"name": d["metadata"]["name"], "namespace": d["metadata"].get("namespace")},
                      "template": toolhive_pod(d)} for _, d in docs if d.get("kind") == "MCPServer"]
        with open(out, "w") as f:
            yaml.safe_dump_all(templates, f)
    if checked == 0:
        print("FAIL  no pod template found")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
