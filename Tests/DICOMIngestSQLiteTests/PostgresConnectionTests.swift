import DICOMIngest
import DICOMIngestModel
import DICOMIngestPostgres
import DICOMIngestSQL
import DICOMIngestTestSupport
import Foundation
import Testing

/// The PostgreSQL catalog's connections when the server drops them (a restart, a failover, an administrator):
/// the next call opens a new connection instead of failing.
@Suite(.enabled(if: StoreBackend.postgresURL != nil, "needs DICOM_INGEST_TEST_POSTGRES (scripts/test.sh starts PostgreSQL)"))
struct PostgresConnectionTests {
    @Test func callsAfterTheServerDroppedThePoolsConnectionsSucceed() throws {
        let folder = try TemporaryFolder("postgres-dropped")
        defer { folder.remove() }
        let store = try StoreBackend.postgres.open(folder.sub("store"))
        let other = try StoreBackend.postgres.open(folder.sub("store"))
        let datastoreId = try store.createDatastore(name: "before", now: 0).datastoreId
        for round in 1...3 {
            // Every connection to this catalog but the one asking goes, the idle ones of `store` among them (other
            // tests' catalogs, in schemas of their own, keep theirs).
            let name = "dicom-ingest/" + StoreBackend.schema(for: folder.sub("store"))
            let terminated = try other.catalog.database.read { db in
                try db.rows(
                    """
                    SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                    WHERE application_name = $1 AND pid <> pg_backend_pid()
                    """, [.text(name)]
                ).first?.int("n") ?? 0
            }
            #expect(terminated >= 1, "round \(round)")
            // A read, then a write, on the pool whose connections were dropped.
            #expect(try store.datastore(id: datastoreId)?.datastoreName == "before")
            _ = try store.createDatastore(name: "after-\(round)", now: Double(round))
        }
        #expect(try store.datastores().count == 4)
    }
}
