public import DICOMIngest
import DICOMIngestModel
public import DICOMIngestSQL
import Foundation

/// A data store whose catalog is in PostgreSQL (`--catalog postgres://…`) and whose frame packs and job journals
/// are in a folder, as for the embedded store. Many processes, on one machine or several, may open the same
/// catalog: their writers take turns by the locks `SQLCatalog` takes (PostgreSQL advisory locks), and the schema
/// is migrated under a lock of its own.
public final class PostgresImageSetStore: SQLBackedImageSetStore {
    public let directory: String
    public let frameStorage: DirectoryFrameStorage
    public let catalog: SQLCatalog
    public var journalFolder: String { directory + "/jobs" }
    private let connections: PostgresConnectionPool

    /// Connects to the catalog at `url` and migrates it; frames and journals go to `directory`.
    /// - Parameter url: `postgres://user:password@host:port/database`, with optional query items `sslmode`
    ///   (disable, prefer, require, verify-full; default prefer), `schema` (the catalog's tables live in this
    ///   schema, created if needed; default `public`) and `pool` (connections, default 8).
    public init(url: String, directory: String) throws {
        let location: PostgresLocation
        do {
            location = try PostgresLocation(url: url)
        } catch {
            throw ImageSetStoreError(.invalid, "\(error)")
        }
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            connections = try PostgresConnectionPool(location: location)
            let database = PostgresCatalogDatabase(connections: connections)
            try PostgresSchema.migrate(database, schema: location.schema)
            catalog = SQLCatalog(database: database, dialect: .postgres, place: location.redacted)
            try catalog.indexImageSetsForSearch()
        } catch {
            throw ImageSetStoreError(.io, "cannot open the catalog at \(location.redacted): \(error)")
        }
        frameStorage = DirectoryFrameStorage(root: directory + "/frames")
    }

    deinit {
        connections.close()
    }
}
