// A program that tries every way out it knows, for the threat model's table
// (docs/threat-model.md, tests/boundary.rs). Usage: escape ADDRESS PORT, a destination the rules
// deny (a loopback listener of the test's); or escape --kill ADDRESS PORT: a grandchild in a
// session of its own kills the parent (the supervisor) through a /proc pidfd, the one signal path
// the filter leaves open, then tries the destination. It treats its parent as the supervisor it would like
// to be rid of, and prints one line per attempt, "name: outcome", where the outcome is what it
// achieved ("connected", "open", "attached"...) or the errno that stopped it. It never harms
// what it reaches: a signal is 0 (permission only), a tracee is detached at once, memory is
// opened but not written, a descriptor taken is closed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *error_name(int code) {
    switch (code) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return strerror(code);
    }
}

static void report(const char *name, int ok, const char *success) {
    printf("%s: %s\n", name, ok ? success : error_name(errno));
    fflush(stdout);
}

// The grandchild's attempt after killing the supervisor: prints what connect() gave.
static int kill_then_connect(pid_t supervisor, struct sockaddr_in *denied) {
    pid_t child = fork();
    if (child != 0) {
        // The supervisor's direct child: it dies with the supervisor (PR_SET_PDEATHSIG).
        pause();
        return 0;
    }
    setsid();
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)supervisor);
    int procfd = open(path, O_DIRECTORY | O_CLOEXEC);
    long sent = syscall(SYS_pidfd_send_signal, procfd, SIGKILL, NULL, 0);
    report("kill the supervisor through /proc", sent == 0, "killed");
    // Wait for it to be gone (its zombie is reaped by its own parent).
    for (int i = 0; i < 200 && kill(supervisor, 0) == 0; i++) usleep(10000);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    report("connect after the supervisor died", connect(s, (void *)denied, sizeof *denied) == 0,
           "connected");
    return 0;
}

int main(int argc, char **argv) {
    int kill_mode = argc == 4 && strcmp(argv[1], "--kill") == 0;
    if (kill_mode) argv++, argc--;
    if (argc != 3) return 2;
    struct sockaddr_in denied = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &denied.sin_addr);
    pid_t parent = getppid();
    if (kill_mode) return kill_then_connect(parent, &denied);

    int s = socket(AF_INET, SOCK_STREAM, 0);
    report("connect through libc", connect(s, (void *)&denied, sizeof denied) == 0, "connected");
    close(s);

    s = socket(AF_INET, SOCK_STREAM, 0);
    report("connect by raw system call",
           syscall(SYS_connect, s, (void *)&denied, sizeof denied) == 0, "connected");
    close(s);

    int raw = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
    report("raw IP socket", raw >= 0, "open");
    if (raw >= 0) close(raw);

    int packet = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    report("packet socket", packet >= 0, "open");
    if (packet >= 0) close(packet);

    int attached = ptrace(PTRACE_ATTACH, parent, 0, 0) == 0;
    int saved = errno;
    if (attached) {
        waitpid(parent, NULL, __WALL);
        ptrace(PTRACE_DETACH, parent, 0, 0);
    }
    errno = saved;
    report("ptrace the supervisor", attached, "attached");

    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)parent);
    int mem = open(path, O_RDWR | O_CLOEXEC);
    report("open the supervisor's memory for writing", mem >= 0, "open");
    if (mem >= 0) close(mem);

    // A write to an address that cannot be valid: EFAULT means the kernel let us try.
    char byte = 0;
    struct iovec local = {&byte, 1}, remote = {(void *)1, 1};
    long wrote = syscall(SYS_process_vm_writev, parent, &local, 1, &remote, 1, 0);
    int allowed = wrote >= 0 || errno == EFAULT;
    report("process_vm_writev into the supervisor", allowed, "allowed");

    int pidfd = (int)syscall(SYS_pidfd_open, parent, 0);
    if (pidfd < 0) {
        report("pidfd_getfd from the supervisor", 0, "");
    } else {
        int taken = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
        report("pidfd_getfd from the supervisor", taken >= 0, "took a descriptor");
        if (taken >= 0) close(taken);
        close(pidfd);
    }

    report("signal the supervisor", kill(parent, 0) == 0, "allowed");

    char params[120] = {0};
    long ring = syscall(SYS_io_uring_setup, 1, params);
    report("io_uring", ring >= 0, "set up");
    if (ring >= 0) close((int)ring);

    // The supervisor's network namespace (under --isolate, the one with a way out): its
    // /proc file, then CAP_SYS_ADMIN over it.
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)parent);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
        report("enter the supervisor's network namespace", 0, "");
    } else {
        report("enter the supervisor's network namespace", setns(ns, CLONE_NEWNET) == 0,
               "entered");
        close(ns);
    }

    // The network it can see: interfaces other than lo (/proc/net/dev: two header lines, then
    // one line per interface, "name: counters").
    FILE *dev = fopen("/proc/net/dev", "r");
    char line[512], name[64];
    int lines = 0, others = 0;
    while (dev && fgets(line, sizeof line, dev)) {
        if (++lines > 2 && sscanf(line, " %63[^:]", name) == 1 && strcmp(name, "lo") != 0) others++;
    }
    if (dev) fclose(dev);
    printf("network interfaces besides lo: %s\n", others ? "some" : "none");
    return 0;
}
