import DICOMIngestPostgres
import DICOMIngestSQL
import DICOMIngestSQLite
import Foundation
import Testing

/// The catalog backends a store test runs against: SQLite always, PostgreSQL when `DICOM_INGEST_TEST_POSTGRES` names
/// a server (`scripts/test.sh` starts a throwaway one and sets `DICOM_INGEST_REQUIRE_POSTGRES`, so that its
/// absence fails the run instead of shrinking it).
enum StoreBackend: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static let postgresURL = ProcessInfo.processInfo.environment["DICOM_INGEST_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    static let all: [StoreBackend] = postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]

    var testDescription: String { rawValue }

    /// Opens the store of `directory` (frames and journals there; on PostgreSQL the catalog is a schema named after
    /// the folder, so that two stores opened on one folder share it, as two processes would).
    func open(_ directory: String) throws -> any SQLBackedImageSetStore {
        switch self {
        case .sqlite:
            return try SQLiteImageSetStore(directory: directory)
        case .postgres:
            let url = try #require(Self.postgresURL)
            return try PostgresImageSetStore(url: url + (url.contains("?") ? "&" : "?") + "schema=" + Self.schema(for: directory), directory: directory)
        }
    }

    /// `t_` and the folder's 64-bit FNV-1a hash.
    static func schema(for directory: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in directory.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "t_" + String(hash, radix: 16)
    }
}

@Suite struct StoreBackendTests {
    /// `scripts/test.sh` always starts PostgreSQL: a run there without it would test one backend and still pass.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DICOM_INGEST_REQUIRE_POSTGRES"] == "1"))
    func postgresIsThereWhenTheTestScriptRuns() {
        #expect(StoreBackend.all == [.sqlite, .postgres])
    }
}
