import CoreMetrics

/// The engine's metrics, reported through swift-metrics to whatever backend the composition root chose
/// (the server exposes them in Prometheus format on `/metrics`).
struct ImportMetrics: Sendable {
    let factory: any MetricsFactory

    init(factory: (any MetricsFactory)?) {
        self.factory = factory ?? MetricsSystem.factory
    }

    /// A finished file: `outcome` is imported, customer_error or server_error; `reason` the failure's code.
    func file(outcome: String, reason: String? = nil) {
        Counter(label: "dicom_ingest_files_total", dimensions: [("outcome", outcome)], factory: factory).increment()
        if let reason {
            Counter(label: "dicom_ingest_file_errors_total", dimensions: [("reason", reason)], factory: factory).increment()
        }
    }

    func bytesRead(_ bytes: Int) {
        Counter(label: "dicom_ingest_bytes_total", factory: factory).increment(by: bytes)
    }

    func jobStarted() {
        Counter(label: "dicom_ingest_jobs_total", dimensions: [("status", "IN_PROGRESS")], factory: factory).increment()
    }

    func jobFinished(status: String, seconds: Double) {
        Counter(label: "dicom_ingest_jobs_total", dimensions: [("status", status)], factory: factory).increment()
        Timer(label: "dicom_ingest_job_duration_seconds", factory: factory).recordSeconds(seconds)
    }

    /// The stable code at the start of a failure message (`TRUNCATED`, `NOT_DICOM`…), else the exception type.
    static func reason(of failure: ImportFailure) -> String {
        if failure.message.hasPrefix("Not a DICOM P10 file") { return "NOT_DICOM" }
        if let colon = failure.message.firstIndex(of: ":") {
            let prefix = failure.message[..<colon]
            if !prefix.isEmpty, prefix.allSatisfy({ $0.isUppercase || $0 == "_" }) { return String(prefix) }
        }
        if failure.message.hasPrefix("DICOM attribute") { return "MISSING_OR_INVALID_ATTRIBUTE" }
        return failure.exceptionType
    }
}
