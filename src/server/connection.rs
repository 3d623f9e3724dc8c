//! One client connection: read, parse, execute, batch the responses, write.
