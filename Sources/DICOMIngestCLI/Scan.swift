import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestS3
import Dispatch
import Foundation
import Glibc
import Synchronization

extension DICOMIngestCommand {
    /// `dicom-ingest scan <prefix>`: one JSON line per file on stdout, a summary on stderr.
    struct Scan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inventory a folder: one JSON line per file on stdout, a summary on stderr.",
            discussion: """
                Each line is {"inputFile","status":"OK"|"WARNING"|"ERROR","error"?,"warnings","attributes"}.
                Exit status 0 when the scan ran (whatever the files held), 1 when the prefix cannot be read.
                """
        )

        @Argument(help: "s3://bucket/prefix/, or a local folder or file as a path or a file:// URI.")
        var prefix: String

        @Option(help: "S3 endpoint for s3:// prefixes (default: the AWS environment).")
        var endpointURL: String?

        @Option(help: "Worker threads (default: the number of processors).")
        var threads: Int?

        @Flag(help: "Never print the progress line, even on a terminal.")
        var noProgress = false

        mutating func validate() throws {
            if let threads, threads < 1 {
                throw ValidationError("--threads must be at least 1")
            }
            guard S3Location(uri: prefix) != nil || (try? LocalPrefix.path(from: prefix)) != nil else {
                throw ValidationError("unsupported prefix \(prefix): use s3://bucket/prefix, a local path or a file:// URI")
            }
        }

        func run() throws {
            let scan: ArchiveScan
            if let location = S3Location(uri: prefix) {
                // S3 objects are reported relative to the prefix, as local files are.
                let source = try CommandLineObjectIO(endpointURL: endpointURL).scanSource(for: prefix)
                let folder = location.folderPrefix
                scan = ArchiveScan(source: source, configuration: .init(threads: threads)) { object in
                    object.key.hasPrefix(folder) ? String(object.key.dropFirst(folder.count)) : object.key
                }
            } else {
                scan = ArchiveScan(root: try LocalPrefix.path(from: prefix), configuration: .init(threads: threads))
            }
            let output = LineWriter()
            let progress = noProgress ? nil : ProgressLine.startIfTerminal { seconds in
                let summary = scan.progress
                return "\(summary.files) files  \(format(Double(summary.files) / seconds)) files/s  "
                    + "\(format(Double(summary.bytes) / 1e6 / seconds)) MB/s  errors \(summary.errorFiles)"
            }
            let summary: ScanSummary
            do {
                summary = try scan.run { result in output.write(result.json) }
            } catch {
                progress?.stop()
                output.flush()
                FileHandle.standardError.write(Data("error: cannot read \(prefix)\n".utf8))
                throw ExitCode(1)
            }
            progress?.stop()
            output.flush()
            let text = """
                files \(summary.files)  DICOM \(summary.dicomFiles)  not DICOM \(summary.notDICOMFiles)  \
                errors \(summary.errorFiles)  warnings \(summary.warningFiles)  studies \(summary.studies)  \
                series \(summary.series)  \(format(summary.filesPerSecond)) files/s  \
                \(format(summary.megabytesPerSecond)) MB/s of files  \
                \(format(Double(summary.bytesRead) / 1e6)) MB read  \(format(summary.seconds)) s

                """
            FileHandle.standardError.write(Data(text.utf8))
        }
    }
}

func format(_ value: Double) -> String {
    String(format: "%.1f", value)
}

/// Turns a prefix argument (a path or a `file://` URI) into a local path or a `file://` URI.
enum LocalPrefix {
    struct Unsupported: Error {}

    /// A plain path, or a `file://` URI decoded exactly as import jobs decode it.
    static func path(from prefix: String) throws -> String {
        if prefix.hasPrefix("file://") { return try LocalObjectIOFactory.path(of: prefix) }
        if prefix.contains("://") { throw Unsupported() }
        return prefix
    }

    /// An absolute `file://` URI for the prefix, as import jobs record `inputS3Uri`/`outputS3Uri`.
    /// - Parameter folder: whether the prefix names a folder (its URI ends in `/`); nil asks the file system.
    ///   An output prefix is a folder whether or not it exists yet, so that a repeated request (the same client
    ///   token) names it the same way before and after the first run created it.
    static func uri(from prefix: String, folder: Bool? = nil) throws -> String {
        let path = try self.path(from: prefix)
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let url = folder.map { URL(fileURLWithPath: absolute, isDirectory: $0) } ?? URL(fileURLWithPath: absolute)
        return url.standardizedFileURL.absoluteString
    }
}

/// Writes JSON lines to stdout from many threads; each line is written whole.
final class LineWriter: Sendable {
    private let buffer = Mutex([UInt8]())

    func write(_ value: JSONValue) {
        var line: [UInt8] = []
        line.reserveCapacity(512)
        value.write(to: &line)
        line.append(0x0A)
        buffer.withLock { pending in
            pending.append(contentsOf: line)
            if pending.count >= 64 * 1024 {
                Self.writeAll(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    func flush() {
        buffer.withLock { pending in
            Self.writeAll(pending)
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// Standard output going away (a closed pipe) ends the output, not the scan.
    private static func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { try? DescriptorIO.writeAll($0, to: 1, what: "standard output") }
    }
}

/// A progress line on stderr, redrawn twice a second, only when stderr is a terminal.
final class ProgressLine {
    private let timer: any DispatchSourceTimer

    private init(timer: any DispatchSourceTimer) {
        self.timer = timer
    }

    /// - Parameter render: the line's text, given the seconds since start.
    static func startIfTerminal(_ render: @escaping @Sendable (Double) -> String) -> ProgressLine? {
        guard isatty(2) != 0 else { return nil }
        let start = DispatchTime.now()
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "progress"))
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
        timer.setEventHandler {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + render(seconds)).utf8))
        }
        timer.resume()
        return ProgressLine(timer: timer)
    }

    func stop() {
        timer.cancel()
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
