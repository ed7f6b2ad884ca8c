import CCodecs

/// The process's heap, as a long-running server manages it.
public enum ProcessMemory {
    /// Returns the allocator's free memory to the system: glibc keeps what each thread's arena grew to, so a
    /// server's few blocking threads would otherwise each keep the peak of the largest answer they built.
    public static func returnFreeMemory() {
        _ = CCodecs_trimMemory()
    }
}
