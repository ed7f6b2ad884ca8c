import Dispatch
import DICOMIngestModel
import DICOMParser
import Foundation
import Synchronization

/// Totals of a scan.
public struct ScanSummary: Hashable, Sendable {
    public var files = 0
    public var dicomFiles = 0
    public var notDICOMFiles = 0
    /// Files with status ERROR, `NOT_DICOM` included.
    public var errorFiles = 0
    public var warningFiles = 0
    public var studies = 0
    public var series = 0
    /// Total size of the files scanned.
    public var bytes = 0
    /// Bytes actually read to scan them.
    public var bytesRead = 0
    public var seconds = 0.0

    public var filesPerSecond: Double { seconds > 0 ? Double(files) / seconds : 0 }
    public var megabytesPerSecond: Double { seconds > 0 ? Double(bytes) / 1_000_000 / seconds : 0 }
}

/// Scans every object under a prefix in parallel (the `dicom-ingest scan` engine): a local folder, or any
/// `ObjectSource` such as an S3 prefix.
public final class ArchiveScan: Sendable {
    public struct Configuration: Sendable {
        /// Worker threads (default: active processor count).
        public var threads: Int
        public var scanner: InstanceScanner

        public init(threads: Int? = nil, scanner: InstanceScanner = InstanceScanner()) {
            self.threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
            self.scanner = scanner
        }
    }

    private struct Totals {
        var summary = ScanSummary()
        var studies = Set<String>()
        var series = Set<String>()
    }

    private let source: any ObjectSource
    private let reportedKey: @Sendable (SourceObject) -> String
    private let configuration: Configuration
    private let totals = Mutex(Totals())

    /// Scans a local folder (or file); files are reported relative to it.
    public convenience init(root: String, configuration: Configuration = Configuration()) {
        let source = LocalDirectorySource(root: root)
        self.init(source: source, configuration: configuration) { source.relativeKey(of: $0) }
    }

    /// Scans any source; `reportedKey` names each object in the report.
    public init(
        source: any ObjectSource,
        configuration: Configuration = Configuration(),
        reportedKey: @escaping @Sendable (SourceObject) -> String
    ) {
        self.source = source
        self.configuration = configuration
        self.reportedKey = reportedKey
    }

    /// Files, bytes and errors so far (for a progress line).
    public var progress: ScanSummary {
        totals.withLock { $0.summary }
    }

    /// Runs the scan, calling `onResult` once per file from the worker threads, and returns the totals.
    /// - Throws: `ObjectIOError` when the folder cannot be listed.
    public func run(onResult: @escaping @Sendable (FileScanResult) -> Void) throws -> ScanSummary {
        let start = DispatchTime.now()
        let source = self.source
        let reportedKey = self.reportedKey
        let isLocal = source is LocalDirectorySource
        let scanner = configuration.scanner
        let chunk = scanner.parseOptions.readChunkSize
        try WorkerPool(threads: configuration.threads).forEach(
            in: source, makeWorker: { P10ReadBuffer(capacity: chunk) }
        ) { buffer, object in
            let key = reportedKey(object)
            let result: FileScanResult
            do {
                result = scanner.scan(
                    input: try source.open(object), inputFile: key, buffer: buffer,
                    localPath: isLocal && object.rawLocation == nil ? object.location : nil)
            } catch {
                result = InstanceScanner.unreadable(key, "\(error)")
            }
            self.record(result)
            onResult(result)
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        return totals.withLock { totals in
            var summary = totals.summary
            summary.studies = totals.studies.count
            summary.series = totals.series.count
            summary.seconds = elapsed
            return summary
        }
    }

    private func record(_ result: FileScanResult) {
        let study = result.attribute("StudyInstanceUID")?.stringValue
        let series = result.attribute("SeriesInstanceUID")?.stringValue
        totals.withLock { totals in
            totals.summary.files += 1
            totals.summary.bytes += result.byteCount
            totals.summary.bytesRead += result.bytesRead
            switch result.status {
            case .ok: totals.summary.dicomFiles += 1
            case .warning:
                totals.summary.dicomFiles += 1
                totals.summary.warningFiles += 1
            case .error:
                totals.summary.errorFiles += 1
                if result.error?.type == DICOMParseError.Code.notDICOM.description {
                    totals.summary.notDICOMFiles += 1
                }
            }
            if let study, !study.isEmpty { totals.studies.insert(study) }
            if let series, !series.isEmpty { totals.series.insert(series) }
        }
    }
}
