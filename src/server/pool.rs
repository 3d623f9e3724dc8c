//! A pool of reusable blocking handler threads with small stacks.
