import Foundation
import Testing

/// Imports on a PostgreSQL catalog whose backends are terminated again and again and whose server restarts
/// mid-import (scripts/postgres/faults_e2e.py, on a cluster of its own): each completes in one run with every file
/// once, as a single process, through `serve`, and on workers.
@Suite(
    .enabled(
        if: FileManager.default.fileExists(atPath: "/usr/lib/postgresql/15/bin/initdb"),
        "needs PostgreSQL 15 (scripts/test.sh installs it)"),
    .serialized)
struct PostgresFaultTests {
    func scenario(_ name: String) throws { try ScenarioScript.run("scripts/postgres/faults_e2e.py", scenario: name) }

    @Test func aSingleProcessImportRidesThroughKilledBackendsAndARestart() throws { try scenario("import") }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
    func aServerJobRidesThroughKilledBackendsAndARestart() throws { try scenario("serve") }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
    func workersRideThroughKilledBackendsAndARestart() throws { try scenario("workers") }
}
