/* Empty: the real library comes from Debian (see ../README.md). */
