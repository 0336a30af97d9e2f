//! Signal masks for `mcp-redirect run --mode supervise`: the supervisor blocks the termination
//! signals it forwards to its child and collects them with `sigwait`, and re-raises the signal
//! that killed the child on itself, so that its own parent sees what it would have seen.

/// A set of signal numbers (`sigset_t`).
#[derive(Clone, Copy)]
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// The set of `signals`.
    pub fn of(signals: &[i32]) -> SignalSet {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: set is a valid, writable sigset_t.
        unsafe {
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
        }
        SignalSet(set)
    }

    /// Blocks the set in the calling thread (`pthread_sigmask(SIG_BLOCK)`); threads started
    /// afterwards inherit the mask.
    pub fn block(&self) {
        // SAFETY: self.0 is a valid sigset_t, only read; no old mask is asked for.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
    }

    /// Waits for one of the set's (blocked) signals and takes it (`sigwait`): the signal, or
    /// the error code sigwait returned.
    pub fn wait(&self) -> Result<i32, i32> {
        let mut signal = 0;
        // SAFETY: self.0 and signal are valid for sigwait.
        match unsafe { libc::sigwait(&self.0, &mut signal) } {
            0 => Ok(signal),
            code => Err(code),
        }
    }
}

/// Restores `signal`'s default action, unblocks it and raises it on the calling thread: a
/// process that re-raises the signal that killed its child ends the same way.
pub fn reraise_with_default_action(signal: i32) {
    // SAFETY: setting the default action installs no handler of ours.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
    let set = SignalSet::of(&[signal]);
    // SAFETY: set.0 is a valid sigset_t, only read; raise takes a signal number.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set.0, std::ptr::null_mut());
        libc::raise(signal);
    }
}
