public import DICOMIngestModel

/// An image set as the catalog holds it.
public struct ImageSetRecord: Hashable, Sendable {
    public var imageSetId: String
    public var datastoreId: String
    public var key: ImageSetKey
    public var isPrimary: Bool
    public var latestVersion: Int
    /// `ImageSetState`: ACTIVE, LOCKED or DELETED.
    public var state: String
    /// `ImageSetWorkflowStatus`; imports leave `IMPORTED`.
    public var workflowStatus: String
    public var createdAt: Double
    public var updatedAt: Double
    public var instanceCount: Int
    /// The study's StudyTime (0008,0030) as its latest version holds it; not part of the grouping key (spec §4.1).
    public var studyTime: String

    public init(
        imageSetId: String, datastoreId: String, key: ImageSetKey, isPrimary: Bool, latestVersion: Int,
        state: String = "ACTIVE", workflowStatus: String = "IMPORTED", createdAt: Double, updatedAt: Double,
        instanceCount: Int, studyTime: String = ""
    ) {
        self.studyTime = studyTime
        self.imageSetId = imageSetId
        self.datastoreId = datastoreId
        self.key = key
        self.isPrimary = isPrimary
        self.latestVersion = latestVersion
        self.state = state
        self.workflowStatus = workflowStatus
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.instanceCount = instanceCount
    }
}

/// One version of an image set.
public struct ImageSetVersion: Hashable, Sendable {
    public var version: Int
    public var createdAt: Double
    public var jobId: String?

    public init(version: Int, createdAt: Double, jobId: String?) {
        self.version = version
        self.createdAt = createdAt
        self.jobId = jobId
    }
}

/// One image set's new version, written atomically by `ImageSetStore.commit`.
public struct ImageSetCommit: Sendable {
    public var datastoreId: String
    public var jobId: String
    /// The image set to add a version to; `nil` creates a new image set.
    public var imageSetId: String?
    public var key: ImageSetKey
    public var isPrimary: Bool
    /// This job's instances for the image set, in input-key order; a SOP Instance UID already in the image set is
    /// replaced.
    public var instances: [PreparedInstance]
    public var committedAt: Double

    public init(
        datastoreId: String, jobId: String, imageSetId: String?, key: ImageSetKey, isPrimary: Bool,
        instances: [PreparedInstance], committedAt: Double
    ) {
        self.datastoreId = datastoreId
        self.jobId = jobId
        self.imageSetId = imageSetId
        self.key = key
        self.isPrimary = isPrimary
        self.instances = instances
        self.committedAt = committedAt
    }
}

/// One result of a job as the catalog records it, so that a resumed job writes its result files again exactly.
public struct JobLine: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        case success
        case warning
        case customerError = "customer-error"
        case serverError = "server-error"
        /// An `imageSetsSummary` entry of the manifest; `inputKey` is the image set ID.
        case imageSet = "image-set"
    }

    public var kind: Kind
    public var inputKey: String
    /// The compact JSON of the line (for `imageSet`, of the summary entry).
    public var json: [UInt8]

    public init(kind: Kind, inputKey: String, json: [UInt8]) {
        self.kind = kind
        self.inputKey = inputKey
        self.json = json
    }
}

/// Failures of a store, mapped to service errors by `IngestServiceError.init(_:)`.
public struct ImageSetStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case notFound
        case conflict
        case quotaExceeded
        /// A request the store cannot take (a page token of another listing).
        case invalid
        case io
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// The catalog of data stores, jobs, image sets, their versions and frames. The engine depends on this protocol
/// only; `SQLiteImageSetStore` (in `DICOMIngestSQLite`) is the embedded implementation.
///
/// Staging keeps a running job's prepared instances out of sight until `commit` adds them to an image set
/// version, so a crash never leaves a half-written image set visible.
public protocol ImageSetStore: Sendable {
    func createDatastore(name: String, losslessStorageFormat: LosslessStorageFormat, now: Double) throws -> DatastoreProperties
    func datastore(id: String) throws -> DatastoreProperties?
    /// Every data store that is not DELETED, oldest first.
    func datastores() throws -> [DatastoreProperties]
    /// One page of ListDatastores (DELETED ones only when `status` asks for them), oldest first, read by key.
    func datastores(status: DatastoreStatus?, limit: Int, after: PageToken?) throws -> Page<DatastoreProperties>
    /// - Throws: `ImageSetStoreError.conflict` when image sets remain (spec §1.5) or a job is SUBMITTED or
    ///   IN_PROGRESS in it (it would import into a deleted data store).
    func deleteDatastore(id: String, now: Double) throws -> DatastoreProperties

    /// Records a SUBMITTED job, in one transaction with the checks that make it safe under concurrent calls:
    /// a job of the data store with the same `clientToken` is returned instead (a unique index stands behind
    /// this), the data store must be ACTIVE, and fewer than `maxActiveJobs` of its jobs may be SUBMITTED or
    /// IN_PROGRESS.
    /// - Returns: the job now recorded under the token, and whether it is the one given.
    /// - Throws: `notFound` (no such data store), `conflict` (not ACTIVE), `quotaExceeded`.
    func insertJob(_ job: DICOMImportJobProperties, maxActiveJobs: Int) throws -> (job: DICOMImportJobProperties, inserted: Bool)
    func updateJob(_ job: DICOMImportJobProperties) throws
    /// `import --resume` of a job that FAILED: IN_PROGRESS again, its server-error lines forgotten (those objects
    /// are read again; what was staged and the other lines stay), in one transaction.
    func reopenFailedJob(_ job: DICOMImportJobProperties) throws
    func job(datastoreId: String, jobId: String) throws -> DICOMImportJobProperties?
    /// One page of a data store's jobs, newest first (ListDICOMImportJobs), read by key from an index.
    func jobs(datastoreId: String, status: JobStatus?, limit: Int, after: PageToken?) throws -> Page<DICOMImportJobProperties>

    /// Marks the start of one more run of a job (the first, or a resume) and returns its number, from 1.
    func beginAttempt(jobId: String) throws -> Int

    /// Stages prepared instances, records result lines (failures) of a job and its progress with them, in one
    /// transaction: after it, the objects they come from are done for a resumed run, and counted.
    func stage(_ instances: [PreparedInstance], lines: [JobLine], jobId: String, progress: ImportJobProgress) throws
    /// Series Instance UIDs with staged instances, sorted.
    func stagedSeries(jobId: String) throws -> [String]
    func stagedInstances(jobId: String, seriesInstanceUID: String) throws -> [PreparedInstance]
    /// How many instances of the job are staged (prepared, not yet committed).
    func stagedInstanceCount(jobId: String) throws -> Int
    /// Whether the job has staged the object with this input key, or recorded a result line for it.
    func isDone(jobId: String, inputKey: String) throws -> Bool
    /// The job's recorded result lines, in the order they were recorded.
    func forEachLine(jobId: String, _ body: (JobLine) throws -> Void) throws
    /// Records a job's end (status, end time, message, final progress) and drops what it kept to resume (staged instances, recorded
    /// lines) in one transaction: a stop between the two would leave rows no run ever reads again, holding their
    /// frame packs. A job a process ran that FAILED keeps them for `import --resume` (`reopenFailedJob`).
    func endJob(_ job: DICOMImportJobProperties) throws

    /// Commits a job's staged instances of one series in one write transaction: reads the series' primary image
    /// set, lets `plan` choose the versions to write from it, writes each (creating an image set when
    /// `imageSetId` is nil, adding a version otherwise) and drops the series' staged rows. No other commit can
    /// come between the read and the writes, so two jobs on one new series cannot both create its primary image
    /// set, and a version number is taken once.
    /// - Returns: the image sets as written, in the order of the commits `plan` returned.
    /// `lines` makes the job's result lines for the image sets as written, and its progress once they are counted;
    /// both are recorded in the same transaction, so a resumed job neither commits the series again nor loses its
    /// lines.
    func commitSeries(
        datastoreId: String, jobId: String, seriesInstanceUID: String,
        plan: (_ primary: ImageSetRecord?) throws -> [ImageSetCommit],
        lines: (_ written: [ImageSetRecord]) throws -> (lines: [JobLine], progress: ImportJobProgress)
    ) throws -> [ImageSetRecord]

    /// Jobs left SUBMITTED or IN_PROGRESS (by a stop or a crash), oldest first, to resume; not those run by
    /// workers (`ImportWorkQueue`), which workers resume.
    func unfinishedJobs() throws -> [DICOMImportJobProperties]

    func imageSets(datastoreId: String) throws -> [ImageSetRecord]
    /// One page of SearchImageSets: the data store's image sets, DELETED ones excluded, that pass every filter, in
    /// the query's order.
    func searchImageSets(datastoreId: String, query: ImageSetQuery) throws -> Page<ImageSetRecord>
    /// One page of an image set's versions, newest first (ListImageSetVersions), read by key.
    func imageSetVersions(datastoreId: String, imageSetId: String, limit: Int, after: PageToken?) throws -> Page<ImageSetVersion>
    /// Marks an image set DELETED (its versions stay on disk but are no longer served).
    func deleteImageSet(datastoreId: String, imageSetId: String, now: Double) throws -> ImageSetRecord
    /// CopyImageSet: the source's instances (all, or those chosen) into a new image set, or as one new version of
    /// the destination, in one transaction; the frames' bytes are not copied, only their records.
    /// - Throws: `notFound`, `conflict` (a stale version, or a second primary image set for the series), `invalid`
    ///   (an instance the source lacks, another series, metadata that differs without `force`), `quotaExceeded`
    ///   (more than `ImageSetCopy.maxFrames` frames).
    func copyImageSet(datastoreId: String, copy: ImageSetCopy, now: Double) throws -> (source: ImageSetRecord, destination: ImageSetRecord)

    /// UpdateImageSetMetadata: applies `update` as one new version of the image set, in one transaction.
    /// - Throws: `notFound` (no such image set, or version to revert to), `conflict` (`latestVersion` is not the
    ///   image set's latest), `invalid` (a change names an instance the image set lacks, or leaves it empty).
    func updateImageSetMetadata(
        datastoreId: String, imageSetId: String, latestVersion: Int, update: ImageSetUpdate, now: Double
    ) throws -> ImageSetRecord

    /// Tags of a data store or image set, by ARN.
    func tags(resourceArn: String) throws -> [String: String]
    func tagResource(resourceArn: String, tags: [String: String]) throws
    func untagResource(resourceArn: String, keys: [String]) throws
    func imageSet(datastoreId: String, imageSetId: String) throws -> ImageSetRecord?
    /// The gzip-compressed metadata document of a version (the latest when `version` is nil).
    func metadataDocument(datastoreId: String, imageSetId: String, version: Int?) throws -> [UInt8]?
    /// What the metadata document of a version is composed from (the latest when `version` is nil), for readers
    /// that need its instances, not the document: no document is composed, compressed or parsed whole. With
    /// `sopInstanceUID`, that instance's entry only (none when the version lacks it).
    func metadataPieces(datastoreId: String, imageSetId: String, version: Int?, sopInstanceUID: String?) throws -> MetadataPieces?
    /// A frame of an image set that is not DELETED, in the data store named: a frame ID alone reaches nothing.
    func frame(datastoreId: String, imageSetId: String, frameId: String) throws -> StoredFrame?
    /// QIDO-RS: one page of a search's matches among live image sets (primary ones unless it names one).
    func searchDICOMweb(datastoreId: String, query: DICOMwebQuery) throws -> [DICOMwebMatch]
}

/// A version's metadata as a catalog keeps it.
public enum MetadataPieces: Sendable {
    /// The compact JSON of its levels' `DICOM` objects and of each instance's entry (by SOP Instance UID).
    case pieces(patient: [UInt8], study: [UInt8], series: [UInt8], instances: [(String, [UInt8])])
    /// The whole gzip document, as versions written before documents were composed when read keep it.
    case document(gzip: [UInt8])
}

/// Assembles the image set metadata document (spec §3.1) from stored JSON pieces, without re-parsing them.
public enum MetadataDocument {
    public static let schemaVersion = "1.1"

    /// - Parameters:
    ///   - patient, study, series: compact JSON objects of the `DICOM` members of each level.
    ///   - instances: (SOP Instance UID, compact JSON of the instance entry), in the order to write.
    public static func compose(
        datastoreId: String,
        imageSetId: String,
        seriesInstanceUID: String,
        patient: [UInt8],
        study: [UInt8],
        series: [UInt8],
        instances: [(String, [UInt8])]
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(instances.reduce(1024) { $0 + $1.1.count + 80 })
        func raw(_ text: String) { out.append(contentsOf: text.utf8) }
        func string(_ text: String) { JSONValue.writeString(text, to: &out) }
        raw("{\"SchemaVersion\":")
        string(schemaVersion)
        raw(",\"DatastoreID\":")
        string(datastoreId)
        raw(",\"ImageSetID\":")
        string(imageSetId)
        raw(",\"Patient\":{\"DICOM\":")
        out.append(contentsOf: patient)
        raw("},\"Study\":{\"DICOM\":")
        out.append(contentsOf: study)
        raw(",\"Series\":{")
        string(seriesInstanceUID)
        raw(":{\"DICOM\":")
        out.append(contentsOf: series)
        raw(",\"Instances\":{")
        for (index, instance) in instances.enumerated() {
            if index > 0 { raw(",") }
            string(instance.0)
            raw(":")
            out.append(contentsOf: instance.1)
        }
        raw("}}}}}")
        return out
    }
}
