//! Upstream server sets and their connection pools (stub).
