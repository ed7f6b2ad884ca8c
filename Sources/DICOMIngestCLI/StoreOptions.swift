import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestPostgres
import DICOMIngestS3
import DICOMIngestSQLite
import Foundation
import CoreMetrics
import Logging

/// Options every store-facing command shares.
struct StoreOptions: ParsableArguments {
    @Option(help: "Data store folder: frames, job journals and, unless --catalog names another, the SQLite catalog (default: $DICOM_INGEST_STORE, else $XDG_DATA_HOME/dicom-ingest or ~/.local/share/dicom-ingest).")
    var store: String?

    @Option(help: "The catalog, when not the store folder's SQLite file: postgres://user:password@host:port/database, with optional ?sslmode=disable|prefer|require|verify-full, &schema=NAME, &pool=CONNECTIONS (default: $DICOM_INGEST_CATALOG).")
    var catalog: String?

    @Option(help: "Where frames are kept, when not the store folder's frames/: s3://bucket/prefix, so that processes on several machines share them (default: $DICOM_INGEST_FRAMES). Give the same frame store to every command on one catalog.")
    var frames: String?

    var directory: String { store ?? SQLiteImageSetStore.defaultDirectory() }

    /// The S3 frame store from the flag or the environment; nil for the store folder's.
    func framesLocation(environment: [String: String] = ProcessInfo.processInfo.environment) -> S3Location? {
        (frames ?? environment["DICOM_INGEST_FRAMES"]).flatMap { $0.isEmpty ? nil : S3Location(uri: $0) }
    }

    /// The frame store of `store`: the S3 prefix named, or the store folder's `frames/`.
    /// - Parameter endpointURL: the command's `--endpoint-url`, if it has one.
    func frameStorage(for store: any SQLBackedImageSetStore, endpointURL: String? = nil) throws -> any FrameStorage {
        guard let location = framesLocation() else { return store.frameStorage }
        do {
            return S3FrameStorage(client: S3Client(configuration: try S3Configuration.resolve(endpointOverride: endpointURL)), location: location)
        } catch {
            throw CLIError(.validation("\(error)"))
        }
    }

    /// The catalog URL from the flag or the environment; nil for the embedded SQLite catalog.
    func catalogURL(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let url = catalog ?? environment["DICOM_INGEST_CATALOG"]
        return url.flatMap { $0.isEmpty ? nil : $0 }
    }

    func validate() throws {
        if let url = catalogURL(), !(url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")) {
            throw ValidationError("--catalog takes a postgres:// URL (the embedded catalog needs none)")
        }
        if let named = frames ?? ProcessInfo.processInfo.environment["DICOM_INGEST_FRAMES"], !named.isEmpty,
            S3Location(uri: named) == nil
        {
            throw ValidationError("--frames takes an s3://bucket/prefix (local frames live in the store folder)")
        }
    }

    func open() throws -> any SQLBackedImageSetStore {
        do {
            if let url = catalogURL() {
                return try PostgresImageSetStore(url: url, directory: directory)
            }
            return try SQLiteImageSetStore(directory: directory)
        } catch {
            throw CLIError(IngestServiceError(error))
        }
    }
}

/// One page of a listing: `--max-results` items after `--next-token` (the `nextToken` a previous page printed).
struct PageOptions: ParsableArguments {
    @Option(help: "Items per page, 1 to 1000 (default: 1000).") var maxResults = 1000
    @Option(help: "The nextToken printed with the previous page.") var nextToken: String?

    func validate() throws {
        guard (1...1000).contains(maxResults) else { throw ValidationError("--max-results must be from 1 to 1000") }
    }

    func after() throws -> PageToken? {
        guard let nextToken else { return nil }
        guard let token = PageToken(encoded: nextToken) else { throw CLIError(.validation("Invalid --next-token")) }
        return token
    }

    func print<Item>(_ page: Page<Item>, as name: String, _ json: (Item) -> JSONValue) {
        var members: [(String, JSONValue)] = [(name, .array(page.items.map(json)))]
        if let next = page.nextToken { members.append(("nextToken", .string(next.encoded))) }
        printJSON(.object(members))
    }
}

/// The engine's limits, shared by `import` and `serve` (whose jobs share one pool of workers and one budget).
struct EngineOptions: ParsableArguments {
    @Option(help: "Worker threads, shared by every job the process runs (default: the number of processors).")
    var threads: Int?

    @Option(help: "MiB the in-flight work of every job may hold at once: frames being transcoded and instances waiting to be staged (default: 160, for a process under 300 MB, or 64 per thread when that is more).")
    var memoryBudget: Int?

    @Option(help: "Seconds one object may take before it fails (default: 900).")
    var objectTimeLimit: Double = ImportEngine.Configuration.defaultObjectTimeLimit

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let memoryBudget, memoryBudget < 16 { throw ValidationError("--memory-budget must be at least 16 (MiB)") }
        if !(objectTimeLimit > 0) { throw ValidationError("--object-time-limit must be a positive number of seconds") }
    }

    func configuration(store: any SQLBackedImageSetStore, metrics: (any MetricsFactory)? = nil) -> ImportEngine.Configuration {
        ImportEngine.Configuration(
            threads: threads, metrics: metrics, memoryBudget: memoryBudget.map { $0 << 20 }, objectTimeLimit: objectTimeLimit,
            journalFolder: store.journalFolder)
    }
}

/// An API error surfaced by a command: printed as `<Exception>: message`, exit code by kind.
struct CLIError: Error, CustomStringConvertible {
    var error: IngestServiceError

    init(_ error: IngestServiceError) {
        self.error = error
    }

    var description: String { error.description }

    /// Exit codes by exception: 2 invalid request (or a format that cannot be served), 3 not found, 4 conflict,
    /// 5 access denied, 6 quota or throttling, 1 internal.
    var exitCode: Int32 {
        switch error.code {
        case .validationException, .notAcceptableException: return 2
        case .resourceNotFoundException: return 3
        case .conflictException: return 4
        case .accessDeniedException: return 5
        case .serviceQuotaExceededException, .throttlingException: return 6
        case .internalServerException: return 1
        }
    }
}

/// Runs `body`, turning API errors into a message on stderr and their exit code.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as CLIError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(error.exitCode)
    } catch let error as IngestServiceError {
        let wrapped = CLIError(error)
        FileHandle.standardError.write(Data("error: \(wrapped)\n".utf8))
        throw ExitCode(wrapped.exitCode)
    } catch let error as ImageSetStoreError {
        let wrapped = CLIError(IngestServiceError(error))
        FileHandle.standardError.write(Data("error: \(wrapped)\n".utf8))
        throw ExitCode(wrapped.exitCode)
    }
}

func printJSON(_ value: JSONValue) {
    var out: [UInt8] = []
    value.write(to: &out)
    out.append(0x0A)
    FileHandle.standardOutput.write(Data(out))
}

/// The level `DICOM_INGEST_LOG_LEVEL` names, else `fallback`.
func configuredLogLevel(default fallback: Logger.Level) -> Logger.Level {
    ProcessInfo.processInfo.environment["DICOM_INGEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? fallback
}

/// Sends the engine's logs to stderr (stdout carries results), at the level in `DICOM_INGEST_LOG_LEVEL`
/// (default: warning). Runs once per process.
let loggingConfigured: Void = {
    let level = configuredLogLevel(default: .warning)
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}()

/// Deletes the frame packs (in the store folder) or objects (in S3) that no committed or staged frame references (a
/// failed or killed job's, a deleted image set's), logging what it freed; a failure is logged, not fatal: they wait
/// for the next run. An S3 prefix is gone through only when `objectStore` says so (at server start): it holds an
/// object per instance, so listing it after every job would cost more than the job.
func reclaimFramePacks(_ store: any SQLBackedImageSetStore, frames: any FrameStorage, objectStore: Bool = false, logger: Logger) {
    do {
        let reclaimed: ReclaimedFramePacks
        if let s3 = frames as? S3FrameStorage {
            guard objectStore else { return }
            let now = Date().timeIntervalSince1970
            let cutoff = min(now, try store.catalog.oldestActiveJobSubmission() ?? now)
            let objects = try s3.reclaimUnreferencedObjects(before: cutoff) { try store.catalog.referencedFrameBlobs(among: $0) }
            reclaimed = ReclaimedFramePacks(packs: objects.objects, bytes: objects.bytes)
        } else {
            reclaimed = try store.reclaimUnreferencedFramePacks()
        }
        if reclaimed.packs > 0 {
            logger.info(
                "reclaimed unreferenced frame packs",
                metadata: ["packs": .stringConvertible(reclaimed.packs), "bytes": .stringConvertible(reclaimed.bytes)])
        }
    } catch {
        logger.warning("frame packs not reclaimed", metadata: ["error": .string("\(error)")])
    }
}
