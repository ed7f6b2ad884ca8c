public import DICOMIngest
public import DICOMIngestModel
import Foundation
import Glibc

/// A data store whose catalog is an `SQLCatalog` (on SQLite or PostgreSQL), whose frame packs are in a folder and
/// whose jobs keep their journals in `journalFolder`. It serves `ImageSetStore` through its catalog.
public protocol SQLBackedImageSetStore: ImageSetStore {
    var catalog: SQLCatalog { get }
    var frameStorage: DirectoryFrameStorage { get }
    var journalFolder: String { get }
}

extension SQLBackedImageSetStore {
    public func createDatastore(name: String, losslessStorageFormat: LosslessStorageFormat = .htj2k, now: Double) throws -> DatastoreProperties {
        try catalog.createDatastore(name: name, losslessStorageFormat: losslessStorageFormat, now: now)
    }

    public func datastore(id: String) throws -> DatastoreProperties? { try catalog.datastore(id: id) }
    public func datastores() throws -> [DatastoreProperties] { try catalog.datastores() }

    public func datastores(status: DatastoreStatus?, limit: Int, after: PageToken?) throws -> Page<DatastoreProperties> {
        try catalog.datastores(status: status, limit: limit, after: after)
    }
    public func deleteDatastore(id: String, now: Double) throws -> DatastoreProperties { try catalog.deleteDatastore(id: id, now: now) }

    public func insertJob(_ job: DICOMImportJobProperties, maxActiveJobs: Int) throws -> (job: DICOMImportJobProperties, inserted: Bool) {
        try catalog.insertJob(job, maxActiveJobs: maxActiveJobs)
    }

    public func updateJob(_ job: DICOMImportJobProperties) throws { try catalog.updateJob(job) }
    public func job(datastoreId: String, jobId: String) throws -> DICOMImportJobProperties? { try catalog.job(datastoreId: datastoreId, jobId: jobId) }

    public func jobs(datastoreId: String, status: JobStatus?, limit: Int, after: PageToken?) throws -> Page<DICOMImportJobProperties> {
        try catalog.jobs(datastoreId: datastoreId, status: status, limit: limit, after: after)
    }

    public func beginAttempt(jobId: String) throws -> Int { try catalog.beginAttempt(jobId: jobId) }

    public func stage(_ instances: [PreparedInstance], lines: [JobLine], jobId: String, progress: ImportJobProgress) throws {
        try catalog.stage(instances, lines: lines, jobId: jobId, progress: progress)
    }

    public func stagedSeries(jobId: String) throws -> [String] { try catalog.stagedSeries(jobId: jobId) }

    public func stagedInstances(jobId: String, seriesInstanceUID: String) throws -> [PreparedInstance] {
        try catalog.stagedInstances(jobId: jobId, seriesInstanceUID: seriesInstanceUID)
    }

    public func stagedInstanceCount(jobId: String) throws -> Int { try catalog.stagedInstanceCount(jobId: jobId) }
    public func isDone(jobId: String, inputKey: String) throws -> Bool { try catalog.isDone(jobId: jobId, inputKey: inputKey) }
    public func forEachLine(jobId: String, _ body: (JobLine) throws -> Void) throws { try catalog.forEachLine(jobId: jobId, body) }
    public func endJob(_ job: DICOMImportJobProperties) throws { try catalog.endJob(job) }
    public func reopenFailedJob(_ job: DICOMImportJobProperties) throws { try catalog.reopenFailedJob(job) }

    public func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress)
    ) throws -> [ImageSetRecord] {
        try catalog.commitSeries(datastoreId: datastoreId, jobId: jobId, seriesInstanceUID: seriesInstanceUID, plan: plan, lines: lines)
    }

    public func unfinishedJobs() throws -> [DICOMImportJobProperties] { try catalog.unfinishedJobs() }
    public func imageSets(datastoreId: String) throws -> [ImageSetRecord] { try catalog.imageSets(datastoreId: datastoreId) }

    public func searchImageSets(datastoreId: String, query: ImageSetQuery) throws -> Page<ImageSetRecord> {
        try catalog.searchImageSets(datastoreId: datastoreId, query: query)
    }

    public func searchDICOMweb(datastoreId: String, query: DICOMwebQuery) throws -> [DICOMwebMatch] {
        try catalog.searchDICOMweb(datastoreId: datastoreId, query: query)
    }

    public func imageSetVersions(datastoreId: String, imageSetId: String, limit: Int, after: PageToken?) throws -> Page<ImageSetVersion> {
        try catalog.imageSetVersions(datastoreId: datastoreId, imageSetId: imageSetId, limit: limit, after: after)
    }

    public func deleteImageSet(datastoreId: String, imageSetId: String, now: Double) throws -> ImageSetRecord {
        try catalog.deleteImageSet(datastoreId: datastoreId, imageSetId: imageSetId, now: now)
    }

    public func copyImageSet(datastoreId: String, copy: ImageSetCopy, now: Double) throws -> (source: ImageSetRecord, destination: ImageSetRecord) {
        try catalog.copyImageSet(datastoreId: datastoreId, copy: copy, now: now)
    }

    public func updateImageSetMetadata(
        datastoreId: String, imageSetId: String, latestVersion: Int, update: ImageSetUpdate, now: Double
    ) throws -> ImageSetRecord {
        try catalog.updateImageSetMetadata(datastoreId: datastoreId, imageSetId: imageSetId, latestVersion: latestVersion, update: update, now: now)
    }

    public func tags(resourceArn: String) throws -> [String: String] { try catalog.tags(resourceArn: resourceArn) }
    public func tagResource(resourceArn: String, tags: [String: String]) throws { try catalog.tagResource(resourceArn: resourceArn, tags: tags) }
    public func untagResource(resourceArn: String, keys: [String]) throws { try catalog.untagResource(resourceArn: resourceArn, keys: keys) }

    public func imageSet(datastoreId: String, imageSetId: String) throws -> ImageSetRecord? {
        try catalog.imageSet(datastoreId: datastoreId, imageSetId: imageSetId)
    }

    public func metadataDocument(datastoreId: String, imageSetId: String, version: Int?) throws -> [UInt8]? {
        try catalog.metadataDocument(datastoreId: datastoreId, imageSetId: imageSetId, version: version)
    }

    public func metadataPieces(datastoreId: String, imageSetId: String, version: Int?, sopInstanceUID: String?) throws -> MetadataPieces? {
        try catalog.metadataPieces(datastoreId: datastoreId, imageSetId: imageSetId, version: version, sopInstanceUID: sopInstanceUID)
    }

    public func frame(datastoreId: String, imageSetId: String, frameId: String) throws -> StoredFrame? {
        try catalog.frame(datastoreId: datastoreId, imageSetId: imageSetId, frameId: frameId)
    }

    /// Deletes frame packs that nothing in the catalog references: packs of jobs that failed or were killed
    /// before their commit, and of instances that failed after their frames were written.
    ///
    /// A pack is kept when a committed frame or a staged instance (a job to resume) names it, or when it was
    /// modified after the oldest SUBMITTED or IN_PROGRESS job was submitted (a running job, in this process or
    /// another, may be writing it and not have staged it yet). Safe to run at any time.
    public func reclaimUnreferencedFramePacks(now: Double? = nil) throws -> ReclaimedFramePacks {
        let now = now ?? Date().timeIntervalSince1970
        let referenced = try catalog.referencedFrameBlobs()
        let cutoff = min(now, try catalog.oldestActiveJobSubmission() ?? now)
        var reclaimed = ReclaimedFramePacks()
        let root = frameStorage.root
        guard let walker = FileManager.default.enumerator(atPath: root) else { return reclaimed }
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".frames"), !referenced.contains(relative) else { continue }
            var status = stat()
            // A second of slack for file systems with coarse timestamps.
            guard stat(root + "/" + relative, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG,
                Double(status.st_mtim.tv_sec) < cutoff - 1
            else { continue }
            guard unlink(root + "/" + relative) == 0 else {
                throw ImageSetStoreError(.io, "cannot remove frame pack \(relative): \(String(cString: strerror(errno)))")
            }
            reclaimed.packs += 1
            reclaimed.bytes += Int(status.st_size)
        }
        return reclaimed
    }
}

/// What `reclaimUnreferencedFramePacks` removed.
public struct ReclaimedFramePacks: Hashable, Sendable {
    public var packs: Int
    public var bytes: Int

    public init(packs: Int = 0, bytes: Int = 0) {
        self.packs = packs
        self.bytes = bytes
    }
}
