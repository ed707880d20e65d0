//! The bulkhead: a counting semaphore whose guard releases on drop.
