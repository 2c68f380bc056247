import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The process's open-file limit, which bounds how many connections the server can hold.
enum FileDescriptorLimit {
    /// `configured` connections, or fewer when the open-file limit would not leave room for them
    /// and for the files the server keeps open (model, flash region, event loops): an eighth of
    /// the limit, at least 64, stays in reserve. The soft limit is raised to the hard one first.
    static func connectionCap(configured: Int, logger: Logger) -> Int {
        #if canImport(Glibc)
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return configured }
            if limit.rlim_cur < limit.rlim_max {
                var raised = limit
                raised.rlim_cur = limit.rlim_max
                if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
            }
            guard limit.rlim_cur != rlim_t.max else { return configured }  // RLIM_INFINITY
            let files = Int(clamping: limit.rlim_cur)
            let cap = max(1, files - max(64, files / 8))
            if cap < configured {
                logger.warning(
                    "the open-file limit is \(files): serving at most \(cap) connections instead of \(configured) (--max-connections); raise it with ulimit -n"
                )
                return cap
            }
        #endif
        return configured
    }
}
