#!/usr/bin/env python3
"""Writes sandbox/seccomp/nested.json: the seccomp profile of reprod's `nested` step profile.

Every x86_64 system call of the kernel headers (linux-libc-dev's asm/unistd_64.h) is allowed except those
below, which fail with ENOSYS, as calls the kernel lacks (programs fall back where they can); anything the
headers do not name (a newer call, a 32-bit call) fails with EPERM. The nested profile adds SYS_ADMIN and SYS_CHROOT inside the step's user
namespace so a builder can unshare and mount; Docker's own default profile then also allows the other calls
it gates on SYS_ADMIN (bpf, perf_event_open, fanotify_init, lookup_dcookie, name_to_handle_at, quotactl,
syslog), which a builder does not need. This profile refuses them, with the calls Docker's default refuses
anyway, io_uring (a large attack surface no build needs), the new mount API (mount(2) stays), and vsock
sockets (the one socket family the kernel does not namespace).

Run it again when the kernel headers bring new calls: `python3 scripts/seccomp-profile.py`, then commit the
file. The sandbox reads it back from the engine exactly as written.
"""

import json
import re
import sys
from pathlib import Path

HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
OUT = Path(__file__).resolve().parent.parent / "sandbox" / "seccomp" / "nested.json"
ENOSYS = 38

DENIED = {
    # Kernel modules, kexec, rebooting, swap, accounting, the clock, the kernel log and keyrings: the host's.
    "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "syslog", "add_key", "request_key", "keyctl",
    # Calls Docker's default gates on SYS_ADMIN that no builder needs.
    "bpf", "perf_event_open", "fanotify_init", "lookup_dcookie", "name_to_handle_at",
    "open_by_handle_at", "quotactl", "quotactl_fd",
    # Another process's memory and descriptors, NUMA placement of the host's memory.
    "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "ptrace",
    "mbind", "set_mempolicy", "set_mempolicy_home_node", "get_mempolicy", "move_pages", "migrate_pages",
    # Raw I/O ports, old or unused interfaces.
    "iopl", "ioperm", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "vm86", "vm86old",
    "afs_syscall", "tuxcall", "security", "vserver", "getpmsg", "putpmsg",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    # The new mount API (fsconfig was CVE-2022-0185): builders mount with mount(2), which stays allowed.
    "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr",
}

AF_VSOCK = 40  # a socket family the kernel does not namespace: talking to the host's hypervisor


def main():
    names = sorted(set(re.findall(r"#define __NR_([a-z0-9_]+)\s", HEADER.read_text())))
    if len(names) < 300:
        sys.exit(f"{HEADER}: only {len(names)} system calls found")
    allowed = [n for n in names if n not in DENIED and n != "socket"]
    refused = [n for n in names if n in DENIED]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            # Said outright, with ENOSYS (Docker 20.10 ignores a profile's defaultErrnoRet, so the
            # default stays EPERM): a build sees these calls as missing from the kernel.
            {"names": refused, "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            # Every socket family but vsock (EPERM, the default, for that one).
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]},
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(profile, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(allowed)} calls allowed, {len(refused)} refused by name, socket but for vsock")


if __name__ == "__main__":
    main()
