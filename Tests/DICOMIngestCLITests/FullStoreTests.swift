import DICOMIngestTestSupport
import Foundation
import Glibc
import Testing

/// A store whose device fills up during an import (issue 22): the job fails naming the system's reason and the
/// place, the lines of the files in hand say the same, and once space is freed `import --resume` completes it.
@Suite struct FullStoreTests {
    @Test func aFullStoreFailsWithTheDevicesReasonAndResumesOnceSpaceIsFreed() throws {
        try #require(FileManager.default.fileExists(atPath: ScanCommandTests.binary.path), "build first (swift build)")
        let folder = try TemporaryFolder("full-store")
        defer { folder.remove() }
        let study = "1.2.826.0.1.3680043.10.222"
        for index in 0..<60 {
            var instance = SyntheticInstance(study: study, series: study + ".1", sop: study + ".1.\(index)")
            instance.matrix = 128
            instance.frames = 2
            try instance.write(to: folder.sub("in/\(index).dcm"))
        }
        let store = folder.sub("store")
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        // An 8 MiB file system with 7.2 MiB of it taken before the job (root can mount here, as in CI).
        #expect(mount("tmpfs", store, "tmpfs", 0, "size=8m") == 0, "mount: \(String(cString: strerror(errno)))")
        defer { umount(store) }
        try Data(repeating: 0x5A, count: 7_400_000).write(to: URL(fileURLWithPath: store + "/filler"))

        let runner = ScanCommandTests()
        let first = try runner.run(
            ["import", folder.sub("in"), "--output", folder.sub("out"), "--store", store, "--json", "--no-progress", "--threads", "2"])
        #expect(first.status == 1, "\(first.stderr)")
        let failed = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(failed["jobStatus"] as? String == "FAILED")
        let message = failed["message"] as? String ?? ""
        #expect(message.contains(store) && (message.contains("disk is full") || message.contains("No space left on device")), "\(message)")
        let jobFolder = try #require(failed["jobOutputFolder"] as? String)
        let failures = (try? String(contentsOfFile: jobFolder + "/FAILURE/failure.ndjson", encoding: .utf8)) ?? ""
        for line in failures.split(separator: "\n") {
            #expect(line.contains("No space left on device") && line.contains(store + "/frames/"), "\(line)")
        }
        let jobId = try #require(failed["jobId"] as? String)

        try FileManager.default.removeItem(atPath: store + "/filler")
        let resumed = try runner.run(["import", "--resume", jobId, "--store", store, "--json", "--no-progress"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let done = try JSONSerialization.jsonObject(with: Data(resumed.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(done["jobStatus"] as? String == "COMPLETED", "\(resumed.stdout)")
        #expect(done["numberOfImportedFiles"] as? Int == 60)
        #expect(done["numberOfFilesWithServerError"] as? Int == 0)
        let success = try String(contentsOfFile: jobFolder + "/SUCCESS/success.ndjson", encoding: .utf8)
        #expect(success.split(separator: "\n").count == 60)
        #expect(((try? String(contentsOfFile: jobFolder + "/FAILURE/failure.ndjson", encoding: .utf8)) ?? "").isEmpty)
        let sets = try JSONSerialization.jsonObject(
            with: Data(try runner.run(["image-set", "list", "--store", store]).stdout.utf8)) as? [String: Any]
        let summaries = sets?["imageSetsMetadataSummaries"] as? [[String: Any]] ?? []
        #expect(summaries.count == 1)
    }
}
