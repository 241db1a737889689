//! WireGuard keys: generation, derivation and base64 text form (as `wg genkey`/`wg pubkey`).
