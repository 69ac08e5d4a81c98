//! Forwarding one request to an upstream server (stub).
