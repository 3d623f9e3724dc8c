//! Binds the TCP and unix-socket listeners the settings ask for and accepts on them.
