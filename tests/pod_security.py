"""The Kubernetes Pod Security Standards (baseline and restricted, as the Kubernetes docs write them for
v1.30), applied to a pod spec: each violated control is returned as one message. Written from the
standard's tables, control by control, so a test can say which level a manifest meets."""

from __future__ import annotations

from typing import Any

BASELINE_CAPABILITIES = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
     "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)  # fmt: skip
SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
     "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
     "net.ipv4.tcp_keepalive_probes"}
)  # fmt: skip
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in pod.get(key) or []]


def baseline_violations(pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    pod_ctx = pod.get("securityContext") or {}
    contexts = [("pod", pod_ctx)] + [(c["name"], c.get("securityContext") or {}) for c in _containers(pod)]
    for who, ctx in contexts:
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{who}: HostProcess")
        if ctx.get("privileged"):
            out.append(f"{who}: privileged")
        if ctx.get("procMount") not in (None, "Default"):
            out.append(f"{who}: procMount {ctx['procMount']}")
        seccomp = (ctx.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            out.append(f"{who}: seccomp Unconfined")
        apparmor = (ctx.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            out.append(f"{who}: AppArmor {apparmor}")
        selinux = ctx.get("seLinuxOptions") or {}
        if selinux.get("type") not in _SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            out.append(f"{who}: SELinux options {selinux}")
        added = set((ctx.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            out.append(f"{who}: adds capabilities {sorted(added - BASELINE_CAPABILITIES)}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"pod: {key}")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            out.append(f"volume {volume['name']}: hostPath")
    for container in _containers(pod):
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{container['name']}: hostPort {port['hostPort']}")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            out.append(f"pod: sysctl {sysctl['name']} is not on the safe list")
    return out


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    out = baseline_violations(pod)
    pod_ctx = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {volume['name']}: type {sorted(kinds - RESTRICTED_VOLUMES)}")
    if pod_ctx.get("runAsUser") == 0:
        out.append("pod: runAsUser 0")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    for container in _containers(pod):
        name, ctx = container["name"], container.get("securityContext") or {}
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if ctx.get("runAsUser") == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccomp must be RuntimeDefault or Localhost")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            out.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: may add only NET_BIND_SERVICE")
    return out
