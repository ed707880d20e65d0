//! Rate limiters: token bucket (GCRA), fixed window, sliding window counter, sliding
//! window log, leaky bucket as a queue, and keyed limiting.
