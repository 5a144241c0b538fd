//! Locking a std `Mutex` whose guarded data stays consistent even if a holder panicked.
//!
//! The services keep short critical sections behind std mutexes (never held across an
//! `.await`), each one a single insert, remove, copy or swap. A panic elsewhere cannot leave
//! such data half-written, so a poisoned lock is still safe to use, and unwrapping it would
//! only turn one panic into a cascade through every later caller.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking over a poisoned lock (see the module docs for when that is right).
#[inline]
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panicking_holder_is_still_usable() {
        let shared = std::sync::Arc::new(Mutex::new(1));
        let poisoner = std::sync::Arc::clone(&shared);
        let panicked = std::thread::spawn(move || {
            let _guard = lock(&poisoner);
            panic!("a holder panics");
        })
        .join();
        assert!(panicked.is_err());
        assert!(shared.is_poisoned());
        *lock(&shared) += 1;
        assert_eq!(*lock(&shared), 2);
    }
}
