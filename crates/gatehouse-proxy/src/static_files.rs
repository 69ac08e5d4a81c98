//! Static files (owned by the static-files work; stub).
