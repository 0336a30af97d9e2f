//! The one door to libc. Everything that calls into C (other than the hook entry points) lives
//! here, each call returning `io::Result` or a plain value, each `unsafe` block with its reason.
//!
//! Nothing here takes a lock or allocates on a pass-through path.

pub mod epoll;
pub mod exec;
pub mod msghdr;
pub mod namespaces;
pub mod pipe;
pub mod privileges;
pub mod process;
pub mod real;
pub mod seccomp;
pub mod signals;
pub mod socket;

use std::ffi::CStr;
use std::io;

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`; hooks call this once, at the boundary.
pub fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value }
}

/// `getenv` straight from libc: Rust's `std::env` takes a process-wide lock, which a `fork()`
/// in another thread could leave held in the child.
pub fn getenv(name: &CStr) -> Option<String> {
    // SAFETY: name is NUL-terminated; the returned pointer, if not null, is a NUL-terminated
    // string owned by the environment, copied out at once.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: checked non-null above; getenv returns a NUL-terminated string.
    let value = unsafe { CStr::from_ptr(value) };
    Some(value.to_string_lossy().into_owned())
}

/// Monotonic clock in microseconds, for deadlines and `elapsed_us`.
pub fn monotonic_us() -> u64 {
    clock_us(libc::CLOCK_MONOTONIC)
}

/// The coarse monotonic clock (a few milliseconds' resolution, cheaper than the fine one), for
/// once-a-second checks on hot paths.
pub fn coarse_monotonic_us() -> u64 {
    clock_us(libc::CLOCK_MONOTONIC_COARSE)
}

/// Wall clock in microseconds since the Unix epoch, for log timestamps.
pub fn realtime_us() -> u64 {
    clock_us(libc::CLOCK_REALTIME)
}

fn clock_us(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The process id, asked of the kernel each time: a cached value would be wrong after `fork()`.
pub fn pid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Writes all of `bytes` to `fd` with as few `write(2)` calls as the kernel allows, retrying on
/// `EINTR`. Used for stderr messages and log lines; errno is preserved for the caller.
pub fn write_all(fd: i32, bytes: &[u8]) -> io::Result<()> {
    let saved = errno();
    let mut rest = bytes;
    let result = loop {
        if rest.is_empty() {
            break Ok(());
        }
        // SAFETY: rest is a valid readable slice for its length.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break Err(err);
        }
        rest = &rest[n as usize..];
    };
    set_errno(saved);
    result
}

/// One line to stderr, prefixed with `mcp-redirect: `, in a single `write(2)`.
pub fn stderr_line(message: &str) {
    let mut line = Vec::with_capacity(message.len() + 16);
    line.extend_from_slice(b"mcp-redirect: ");
    line.extend_from_slice(message.as_bytes());
    line.push(b'\n');
    let _ = write_stderr(&line);
}

/// Reads a small file whole (config, `/etc/hosts`, `/etc/resolv.conf`), refusing more than
/// `limit` bytes so that a wrong path (a device, a huge file) cannot stall or bloat the process.
pub fn read_small_file(path: &std::path::Path, limit: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let saved = errno();
    let result = (|| {
        let file = std::fs::File::open(path)?;
        let mut bytes = Vec::new();
        file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
        if bytes.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes"),
            ));
        }
        Ok(bytes)
    })();
    set_errno(saved);
    result
}

/// The base name of the running executable (`node`, `python3.11`), from `/proc/self/exe`.
pub fn exe_base_name() -> String {
    let saved = errno();
    let name = std::fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| {
            // SAFETY: program_invocation_short_name is set by glibc before any constructor runs
            // and is a NUL-terminated string for the life of the process.
            let short = unsafe { program_invocation_short_name };
            if short.is_null() {
                return String::from("unknown");
            }
            // SAFETY: checked non-null; NUL-terminated as above.
            unsafe { CStr::from_ptr(short) }
                .to_string_lossy()
                .into_owned()
        });
    set_errno(saved);
    name
}

extern "C" {
    static program_invocation_short_name: *const libc::c_char;
}

/// A slice of `n` zeroed atomics from `calloc`-style allocation: the kernel hands out untouched
/// pages lazily, so a large, mostly empty table (the fake-address table) costs resident memory
/// only for the pages actually written.
pub fn zeroed_atomic_words(n: usize) -> Box<[std::sync::atomic::AtomicU64]> {
    use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
    use std::sync::atomic::AtomicU64;
    if n == 0 {
        return Box::new([]);
    }
    let layout = Layout::array::<AtomicU64>(n).expect("table size fits in memory");
    // SAFETY: the layout is non-zero-sized (n > 0).
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<AtomicU64>();
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: ptr points to n zeroed, properly aligned AtomicU64 values (all-zero bytes are a
    // valid AtomicU64) allocated with the global allocator and this exact layout, which is what
    // Box<[AtomicU64]> frees with.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n)) }
}

/// `(st_dev, st_ino)` of the file a path names now, or `None`.
pub fn path_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let saved = errno();
    let identity = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    set_errno(saved);
    identity
}

/// `(st_dev, st_ino)` of an open fd, or `None` if it is not open.
pub fn file_identity(fd: i32) -> Option<(u64, u64)> {
    let saved = errno();
    // SAFETY: stat is plain data; all-zero is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat buffer.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    set_errno(saved);
    (rc == 0).then_some((st.st_dev, st.st_ino))
}

/// Opens `path` for appending (never through a symlink), close-on-exec, at fd 3 or above: a process started with 0, 1 or
/// 2 closed must not find our log behind its stdin or stdout.
pub fn open_append(path: &std::path::Path) -> io::Result<i32> {
    use std::os::unix::ffi::OsStrExt;
    let saved = errno();
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // O_NOFOLLOW: a log path in a shared directory must not be turned into a write to another
    // file by a planted symlink (the library often runs as root).
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_CLOEXEC
        | libc::O_NOCTTY
        | libc::O_NOFOLLOW
        // A FIFO with no reader must not block the program in open().
        | libc::O_NONBLOCK;
    // SAFETY: c_path is NUL-terminated; the mode argument is an int as open(2) expects.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags, 0o640 as libc::c_uint) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        set_errno(saved);
        return Err(err);
    }
    let fd = if fd < 3 {
        // SAFETY: F_DUPFD_CLOEXEC takes an int argument; fd is open.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        close(fd);
        if high < 0 {
            let err = io::Error::last_os_error();
            set_errno(saved);
            return Err(err);
        }
        high
    } else {
        fd
    };
    set_errno(saved);
    Ok(fd)
}

/// Closes an fd we opened ourselves (the real `close`, never the hook, which keeps the relay's
/// descriptors from the program); errno is preserved.
pub fn close(fd: i32) {
    let saved = errno();
    // SAFETY: closing an fd has no memory-safety preconditions; callers pass only their own.
    unsafe { real::close(fd) };
    set_errno(saved);
}

/// The inode of what `fd` refers to (for a socket: the socket's own, unique while it lives), or
/// `None` if `fd` is not open.
pub fn inode(fd: i32) -> Option<u64> {
    file_identity(fd).map(|(_, ino)| ino)
}

/// `len` bytes of zeroed, private, anonymous memory that the kernel backs with pages only where
/// they are written (`MAP_NORESERVE`), or `None`. Never freed: for tables that live as long as the
/// process.
pub fn map_zeroed(len: usize) -> Option<std::ptr::NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    std::ptr::NonNull::new(ptr.cast())
}

/// Returns the heap's free memory to the system (glibc's `malloc_trim`, every arena); nothing
/// elsewhere.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    {
        let saved = errno();
        // SAFETY: malloc_trim takes the allocator's own locks and touches no memory of ours.
        unsafe {
            libc::malloc_trim(0);
        }
        set_errno(saved);
    }
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id.
pub fn egid() -> u32 {
    // SAFETY: getegid takes nothing and cannot fail.
    unsafe { libc::getegid() }
}

/// A file mapped read-only and shared: its pages are the page cache's, so every process that
/// maps the same file shares them. Unmapped when dropped.
pub struct Mapping {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; the bytes may be read from any
// thread.
unsafe impl Send for Mapping {}
// SAFETY: as above: shared references only read.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The first `len` bytes of `file` (`len` > 0), or `None`.
    pub fn of(file: &std::fs::File, len: usize) -> Option<Mapping> {
        use std::os::fd::AsRawFd;
        if len == 0 {
            return None;
        }
        // SAFETY: a new read-only shared mapping of an open file, at an address of the
        // kernel's choosing, touches no existing memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping {
            ptr: std::ptr::NonNull::new(ptr.cast())?,
            len,
        })
    }

    /// The mapped bytes. A file truncated by someone else under the mapping would make reads
    /// past its new end fault: compiled files are replaced by rename, never rewritten in place.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr maps `len` readable bytes for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping of `len` bytes, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A table of `len` zeroed atomic words that lives as long as the process, mapped on first use
/// ([`map_zeroed`]: pages cost memory only once written). Lock-free: threads that race to map it
/// each map one, the first to publish wins, the others unmap theirs.
pub struct LazyWords {
    ptr: std::sync::atomic::AtomicPtr<std::sync::atomic::AtomicU64>,
    len: usize,
}

impl LazyWords {
    pub const fn new(len: usize) -> LazyWords {
        LazyWords {
            ptr: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            len,
        }
    }

    /// The table, if it has been mapped.
    pub fn get(&self) -> Option<&[std::sync::atomic::AtomicU64]> {
        let ptr = self.ptr.load(std::sync::atomic::Ordering::Acquire);
        if ptr.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer here came from map_zeroed for `len` words, is never
        // unmapped, and all-zero bytes are valid AtomicU64 values.
        Some(unsafe { std::slice::from_raw_parts(ptr, self.len) })
    }

    /// The table, mapped now if it was not; `None` if the kernel gives no memory.
    pub fn get_or_map(&self) -> Option<&[std::sync::atomic::AtomicU64]> {
        use std::sync::atomic::Ordering;
        if let Some(words) = self.get() {
            return Some(words);
        }
        let bytes = self.len * 8;
        let fresh = map_zeroed(bytes)?
            .as_ptr()
            .cast::<std::sync::atomic::AtomicU64>();
        match self.ptr.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {}
            // SAFETY: `fresh` is our own mapping of `bytes` bytes, never published.
            Err(_) => unsafe {
                libc::munmap(fresh.cast(), bytes);
            },
        }
        self.get()
    }

    /// Makes every word zero again by giving the pages back to the kernel: one system call,
    /// async-signal-safe, for a fork handler (the only thread there is).
    pub fn forget(&self) {
        let ptr = self.ptr.load(std::sync::atomic::Ordering::Acquire);
        if !ptr.is_null() {
            // SAFETY: the range is this table's own private anonymous mapping; its words are
            // atomics, and zero pages are valid values for them.
            unsafe { libc::madvise(ptr.cast(), self.len * 8, libc::MADV_DONTNEED) };
        }
    }
}

/// Runs `spawn` with every signal blocked, so that a thread it starts inherits a full signal
/// mask (signals meant for the program are never delivered to a thread of ours), then restores
/// the caller's mask.
pub fn with_signals_blocked<T>(spawn: impl FnOnce() -> T) -> T {
    // SAFETY: sigset_t is plain data, filled by sigfillset before use.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: all is a valid sigset_t; pthread_sigmask only reads `all` and writes `previous`.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
    }
    let value = spawn();
    // SAFETY: previous holds the mask pthread_sigmask returned above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
    value
}

/// Registers `handler` to run when the process exits normally (`atexit`).
pub fn at_exit(handler: extern "C" fn()) -> bool {
    // SAFETY: atexit stores the function pointer, valid for the life of the process.
    unsafe { libc::atexit(handler) == 0 }
}

/// Registers `child` to run in the child after every `fork()` (`pthread_atfork`).
pub fn on_fork_child(child: unsafe extern "C" fn()) -> bool {
    // SAFETY: pthread_atfork stores the function pointers; `child` stays valid for the life of
    // the process (the library is never unloaded while preloaded).
    unsafe { libc::pthread_atfork(None, None, Some(child)) == 0 }
}

/// Resolves `host` for real through libc's own `getaddrinfo` (never our hook), for gateway
/// endpoints and for direct connections to a host that was given a fake address. Returns the
/// `getaddrinfo` error code on failure.
pub fn resolve_real(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, i32> {
    let saved = errno();
    let Ok(c_host) = std::ffi::CString::new(host) else {
        return Err(libc::EAI_NONAME);
    };
    // SAFETY: addrinfo is plain data; all-zero is the conventional empty hints value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: c_host is NUL-terminated, hints and list are valid for the call.
    let rc = unsafe { real::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        set_errno(saved);
        return Err(rc);
    }
    let mut addrs = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: node is a non-null element of the list getaddrinfo returned.
        let entry = unsafe { &*node };
        // SAFETY: ai_addr points to ai_addrlen readable bytes, per getaddrinfo's contract.
        if let Some(addr) = unsafe { socket::read_sockaddr(entry.ai_addr, entry.ai_addrlen) } {
            let addr = std::net::SocketAddr::new(addr.ip(), port);
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        node = entry.ai_next;
    }
    // SAFETY: list came from the real getaddrinfo and is freed once, by the real freeaddrinfo.
    unsafe { real::freeaddrinfo(list) };
    set_errno(saved);
    Ok(addrs)
}

/// What fd 2 was when the library was loaded: the only file we will write stderr lines to.
/// A program may close fd 2 and reuse the number for a file of its own; our line must not land
/// there. 0 = not recorded (the library is used as an ordinary crate, not preloaded), 1 = fd 2
/// was closed, else (dev, ino) packed by [`stderr_identity`].
static STDERR_IDENTITY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const STDERR_CLOSED: u64 = 1;

fn stderr_identity(dev: u64, ino: u64) -> u64 {
    // Never 0 or 1: those are the markers above.
    (dev.rotate_left(32) ^ ino) | 2
}

/// Records what fd 2 is; called once by the library's constructor.
pub fn record_stderr() {
    let identity = match file_identity(2) {
        Some((dev, ino)) => stderr_identity(dev, ino),
        None => STDERR_CLOSED,
    };
    STDERR_IDENTITY.store(identity, std::sync::atomic::Ordering::Relaxed);
}

/// Writes to fd 2 if it is still the stderr the process started with; drops the bytes
/// otherwise (reporting `NotConnected`).
pub fn write_stderr(bytes: &[u8]) -> io::Result<()> {
    let recorded = STDERR_IDENTITY.load(std::sync::atomic::Ordering::Relaxed);
    let same = match recorded {
        0 => true,
        STDERR_CLOSED => false,
        _ => file_identity(2).is_some_and(|(dev, ino)| stderr_identity(dev, ino) == recorded),
    };
    if !same {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "fd 2 is no longer the process's stderr",
        ));
    }
    write_all(2, bytes)
}

/// Makes host lookups (`getaddrinfo` and the rest) read `/etc/hosts` and DNS only, whatever
/// `/etc/nsswitch.conf` says; for the statically linked `mcp-redirect`. glibc (2.34 and later)
/// has those two built in; any other module (`resolve`, `myhostname`, `mdns4_minimal`, `sss`...)
/// it would load with a static `dlopen`, which glibc supports only with the shared libraries of
/// the glibc version the program was linked with, and which another image need not have.
/// Without glibc this does nothing. Returns whether the setting was taken.
pub fn hosts_from_files_and_dns() -> bool {
    #[cfg(target_env = "gnu")]
    {
        extern "C" {
            /// glibc's `<nss.h>`: replaces the service list of one database.
            fn __nss_configure_lookup(db: *const libc::c_char, line: *const libc::c_char) -> i32;
        }
        // SAFETY: two NUL-terminated static strings; glibc parses them into its own list.
        unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) == 0 }
    }
    #[cfg(not(target_env = "gnu"))]
    false
}

/// Whether the code at `addr` belongs to the main executable (this crate linked into a program,
/// such as the `mcp-redirect` tool) rather than to a shared object loaded into it (the preloaded
/// `libmcp_redirect.so`). Compares the object that holds `addr` with the one that holds the
/// program's entry point.
pub fn in_main_executable(addr: *const libc::c_void) -> bool {
    // SAFETY: getauxval has no preconditions.
    let entry = unsafe { libc::getauxval(libc::AT_ENTRY) } as *const libc::c_void;
    match (object_base(addr), object_base(entry)) {
        (Some(ours), Some(main)) => ours == main,
        _ => false,
    }
}

/// The load address of the object (executable or shared library) that holds `addr`, `None` if
/// no loaded object does. `dladdr` allocates nothing.
fn object_base(addr: *const libc::c_void) -> Option<usize> {
    // SAFETY: Dl_info is plain data; dladdr fills it for any address and only reads `addr`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: info is a valid, writable Dl_info.
    let found = unsafe { libc::dladdr(addr, &mut info) } != 0;
    found.then_some(info.dli_fbase as usize)
}
