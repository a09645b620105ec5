//! The I/O shell: runs the sans-IO core on tokio sockets, a DNS resolver and timers.
