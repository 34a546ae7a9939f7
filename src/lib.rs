//! abusedweb: placeholder, being written.
