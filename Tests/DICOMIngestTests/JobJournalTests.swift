import DICOMIngest
import DICOMIngestTestSupport
import Foundation
import Testing

@Suite struct JobJournalTests {
    /// Keys started and not finished in earlier attempts count once per attempt; finished ones and the current
    /// attempt's do not; an archive whose member was in flight is not blamed, the member is.
    @Test func countsWhatEachEarlierAttemptLeftInFlight() throws {
        let folder = try TemporaryFolder("journal")
        defer { folder.remove() }
        let first = try JobJournal(folder: folder.path, jobId: "job", attempt: 1)
        first.started("a.dcm")
        first.finished("a.dcm")
        first.started("b.dcm")
        first.started("scans.zip")
        first.started("scans.zip/one.dcm")
        let second = try JobJournal(folder: folder.path, jobId: "job", attempt: 2)
        second.started("b.dcm")
        second.started("line\nbreak \"quoted\".dcm")
        second.started("c.dcm")
        second.finished("c.dcm")
        let third = try JobJournal(folder: folder.path, jobId: "job", attempt: 3)
        third.started("d.dcm")

        let stops = JobJournal.stopsInFlight(folder: folder.path, jobId: "job", before: 3)
        #expect(stops == ["b.dcm": 2, "scans.zip/one.dcm": 1, "line\nbreak \"quoted\".dcm": 1])
        #expect(JobJournal.stopsInFlight(folder: folder.path, jobId: "job", before: 2) == ["b.dcm": 1, "scans.zip/one.dcm": 1])
        #expect(JobJournal.stopsInFlight(folder: folder.path, jobId: "other", before: 3).isEmpty)

        third.remove()
        #expect(!FileManager.default.fileExists(atPath: third.path))
        #expect(JobJournal.stopsInFlight(folder: folder.path, jobId: "job", before: 3).isEmpty)
    }
}
