import Foundation
import Testing

/// WADO-RS and QIDO-RS through `dicomweb-client` against a real `serve` (scripts/dicomweb/wado_e2e.py, with
/// qido_checks.py): metadata equal to the source data sets element by element, frames in Explicit VR Little Endian
/// bit-exact and as stored, searches equal to a brute-force filter of the sources, the refusals, `imageSetId`
/// scope; on SQLite with local frames, and on PostgreSQL with frames in S3. Orthanc as a DICOMweb client, and OHIF
/// in headless Chromium as a viewer.
@Suite(.serialized) struct DICOMwebTests {
    @Test func wadoRSOnSQLiteWithLocalFrames() throws {
        try ScenarioScript.run("scripts/dicomweb/wado_e2e.py", scenario: "sqlite")
    }

    @Test(.enabled(
        if: ProcessInfo.processInfo.environment["DICOM_INGEST_TEST_POSTGRES"] != nil
            && ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil,
        "needs DICOM_INGEST_TEST_POSTGRES and S3_TEST_ENDPOINT (scripts/test.sh)"))
    func wadoRSOnPostgreSQLWithFramesInS3() throws {
        try ScenarioScript.run("scripts/dicomweb/wado_e2e.py", scenario: "postgres-s3")
    }

    /// Orthanc 1.10's DICOMweb plugin searches the server's studies and retrieves them; its copies equal the sources.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/sbin/Orthanc"), "needs orthanc and orthanc-dicomweb (scripts/test.sh installs them)"))
    func orthancRetrievesInstancesThroughWADORS() throws {
        try ScenarioScript.run("scripts/dicomweb/orthanc_e2e.py", scenario: "retrieve")
    }

    /// OHIF v3 (the build in monailabel 0.8.5) in headless Chromium: its study list shows the imported studies and
    /// its viewer draws the CT frame with its window (scripts/dicomweb/ohif_e2e.py).
    @Test func ohifListsTheStudiesAndDrawsTheCTFrame() throws {
        try ScenarioScript.run("scripts/dicomweb/ohif_e2e.py", scenario: "viewer")
    }
}
