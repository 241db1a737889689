//! The runtime: sockets, TUN devices, signals, reload; feeds the data path batches.
