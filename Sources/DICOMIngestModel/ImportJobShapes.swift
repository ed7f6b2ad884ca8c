/// `JobStatus` (spec §1.4).
public enum JobStatus: String, Hashable, Sendable, CaseIterable {
    case submitted = "SUBMITTED"
    case inProgress = "IN_PROGRESS"
    case completed = "COMPLETED"
    case failed = "FAILED"
}

/// `DatastoreStatus` (spec §1.4).
public enum DatastoreStatus: String, Hashable, Sendable, CaseIterable {
    case creating = "CREATING"
    case createFailed = "CREATE_FAILED"
    case active = "ACTIVE"
    case deleting = "DELETING"
    case deleted = "DELETED"
}

/// How a data store keeps lossless frames (`losslessStorageFormat` of CreateDatastore, spec §5.3).
public enum LosslessStorageFormat: String, Hashable, Sendable, CaseIterable {
    case htj2k = "HTJ2K"
    case jpeg2000Lossless = "JPEG_2000_LOSSLESS"
}

/// `StartDICOMImportJobRequest`: the fields HealthImaging takes, validated against the model's patterns.
///
/// Beyond HealthImaging, `inputS3Uri` and `outputS3Uri` may be `file://` URIs (local prefixes); the S3 adapter
/// handles `s3://`.
public struct StartDICOMImportJobRequest: Hashable, Sendable {
    public var datastoreId: String
    public var jobName: String?
    public var dataAccessRoleArn: String
    public var clientToken: String
    public var inputS3Uri: String
    public var outputS3Uri: String
    public var inputOwnerAccountId: String?

    public init(
        datastoreId: String,
        jobName: String? = nil,
        dataAccessRoleArn: String,
        clientToken: String,
        inputS3Uri: String,
        outputS3Uri: String,
        inputOwnerAccountId: String? = nil
    ) {
        self.datastoreId = datastoreId
        self.jobName = jobName
        self.dataAccessRoleArn = dataAccessRoleArn
        self.clientToken = clientToken
        self.inputS3Uri = inputS3Uri
        self.outputS3Uri = outputS3Uri
        self.inputOwnerAccountId = inputOwnerAccountId
    }

    /// Checks every field against its pattern and length in the service model; the message names the field.
    public func validate() throws(IngestServiceError) {
        try Validation.check("datastoreId", datastoreId, Validation.isResourceId)
        if let jobName {
            try Validation.check("jobName", jobName, { Validation.isJobName($0) })
        }
        try Validation.check("dataAccessRoleArn", dataAccessRoleArn, Validation.isRoleArn)
        try Validation.check("clientToken", clientToken, Validation.isClientToken)
        try Validation.check("inputS3Uri", inputS3Uri, Validation.isPrefixURI)
        try Validation.check("outputS3Uri", outputS3Uri, Validation.isPrefixURI)
        if let inputOwnerAccountId {
            try Validation.check("inputOwnerAccountId", inputOwnerAccountId, { $0.count == 12 && $0.allSatisfy(\.isASCIIDigit) })
        }
    }
}

/// Field patterns of the HealthImaging model (spec §1.4), written out by hand (no regex engine needed).
public enum Validation {
    static func check(
        _ field: String,
        _ value: String,
        _ isValid: (String) -> Bool
    ) throws(IngestServiceError) {
        guard isValid(value) else {
            throw .validation("1 validation error detected: Value at '\(field)' failed to satisfy constraint")
        }
    }

    /// `[0-9a-z]{32}`: DatastoreId, ImageSetId, ImageFrameId.
    public static func isResourceId(_ value: String) -> Bool {
        value.utf8.count == 32 && value.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) }
    }

    /// `[0-9a-z]+`, 1–32: JobId.
    public static func isJobId(_ value: String) -> Bool {
        (1...32).contains(value.utf8.count)
            && value.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) }
    }

    /// `[A-Za-z0-9._/#-]+`, 1–64 (JobName) or 1–256 (DatastoreName).
    public static func isJobName(_ value: String, maxLength: Int = 64) -> Bool {
        (1...maxLength).contains(value.utf8.count) && value.allSatisfy { $0.isASCIIAlphanumeric || "._/#-".contains($0) }
    }

    /// `[A-Za-z0-9._-]+`, 1–64.
    public static func isClientToken(_ value: String) -> Bool {
        (1...64).contains(value.utf8.count) && value.allSatisfy { $0.isASCIIAlphanumeric || "._-".contains($0) }
    }

    /// `arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+`, 20–2048.
    public static func isRoleArn(_ value: String) -> Bool {
        guard (20...2048).contains(value.utf8.count), value.hasPrefix("arn:aws") else { return false }
        let parts = value.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[1] == "aws" || parts[1].hasPrefix("aws-"), parts[2] == "iam",
            parts[3].isEmpty, parts[4].count == 12, parts[4].allSatisfy(\.isASCIIDigit), parts[5].hasPrefix("role/"),
            parts[5].count > 5
        else { return false }
        return true
    }

    /// `s3://[a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9](/.*)?`, 1–1024, or a `file://` URI with an absolute path.
    public static func isPrefixURI(_ value: String) -> Bool {
        guard (1...1024).contains(value.utf8.count) else { return false }
        if value.hasPrefix("file:///") { return true }
        guard value.hasPrefix("s3://") else { return false }
        let rest = value.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard (3...63).contains(bucket.count), let first = bucket.first, let last = bucket.last,
            first.isLowercaseAlphanumeric, last.isLowercaseAlphanumeric,
            bucket.allSatisfy({ $0.isLowercaseAlphanumeric || $0 == "." || $0 == "-" })
        else { return false }
        return true
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIIAlphanumeric: Bool { isASCII && (isLetter || isNumber) }
    var isLowercaseAlphanumeric: Bool { isASCII && (isNumber || (isLetter && isLowercase)) }
}

/// `DICOMImportJobProperties` (spec §1.5): what GetDICOMImportJob returns.
public struct DICOMImportJobProperties: Hashable, Sendable {
    public var jobId: String
    public var jobName: String
    public var jobStatus: JobStatus
    public var datastoreId: String
    public var dataAccessRoleArn: String
    public var clientToken: String
    public var submittedAt: Double
    public var endedAt: Double?
    public var inputS3Uri: String
    public var outputS3Uri: String
    public var message: String?
    /// How far the job has got (an extension of ours: HealthImaging has no progress on a job).
    public var progress: ImportJobProgress
    /// Run by worker processes sharing the catalog (`dicom-ingest worker`), not by the process that took it.
    public var runsOnWorkers: Bool

    public init(
        jobId: String, jobName: String, jobStatus: JobStatus, datastoreId: String, dataAccessRoleArn: String,
        clientToken: String, submittedAt: Double, endedAt: Double? = nil, inputS3Uri: String, outputS3Uri: String,
        message: String? = nil, progress: ImportJobProgress = ImportJobProgress(), runsOnWorkers: Bool = false
    ) {
        self.runsOnWorkers = runsOnWorkers
        self.jobId = jobId
        self.jobName = jobName
        self.jobStatus = jobStatus
        self.datastoreId = datastoreId
        self.dataAccessRoleArn = dataAccessRoleArn
        self.clientToken = clientToken
        self.submittedAt = submittedAt
        self.endedAt = endedAt
        self.inputS3Uri = inputS3Uri
        self.outputS3Uri = outputS3Uri
        self.message = message
        self.progress = progress
    }

    /// A `DICOMImportJobSummary`, as ListDICOMImportJobs returns it.
    public var summaryJSON: JSONValue {
        var members: [(String, JSONValue)] = [
            ("jobId", .string(jobId)), ("jobName", .string(jobName)), ("jobStatus", .string(jobStatus.rawValue)),
            ("datastoreId", .string(datastoreId)), ("dataAccessRoleArn", .string(dataAccessRoleArn)),
        ]
        if let endedAt { members.append(("endedAt", .double(endedAt))) }
        members.append(("submittedAt", .double(submittedAt)))
        if let message { members.append(("message", .string(message))) }
        return .object(members)
    }

    /// The wire shape (epoch-second timestamps as numbers).
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("jobId", .string(jobId)), ("jobName", .string(jobName)), ("jobStatus", .string(jobStatus.rawValue)),
            ("datastoreId", .string(datastoreId)), ("dataAccessRoleArn", .string(dataAccessRoleArn)),
        ]
        if let endedAt { members.append(("endedAt", .double(endedAt))) }
        members.append(("submittedAt", .double(submittedAt)))
        members.append(("inputS3Uri", .string(inputS3Uri)))
        members.append(("outputS3Uri", .string(outputS3Uri)))
        if let message { members.append(("message", .string(message))) }
        members.append(("jobSummary", progress.json))
        return .object(members)
    }
}

/// The counts of a job so far, named as in its output manifest's `jobSummary` (spec §2.2), plus the bytes read.
/// GetDICOMImportJob returns them as `jobProperties.jobSummary`, a member HealthImaging does not have: the AWS SDKs
/// skip members they do not know, so their clients are unaffected, while a raw HTTP client or `job get` can follow a
/// job. Kept on the job record, updated with each staged batch and each committed series.
public struct ImportJobProgress: Hashable, Sendable {
    public var scannedFiles = 0
    public var importedFiles = 0
    public var customerErrors = 0
    public var serverErrors = 0
    public var generatedImageSets = 0
    public var bytesRead = 0

    public init(
        scannedFiles: Int = 0, importedFiles: Int = 0, customerErrors: Int = 0, serverErrors: Int = 0,
        generatedImageSets: Int = 0, bytesRead: Int = 0
    ) {
        self.scannedFiles = scannedFiles
        self.importedFiles = importedFiles
        self.customerErrors = customerErrors
        self.serverErrors = serverErrors
        self.generatedImageSets = generatedImageSets
        self.bytesRead = bytesRead
    }

    public var failures: Int { customerErrors + serverErrors }

    public var json: JSONValue {
        .object([
            ("numberOfScannedFiles", .int(Int64(scannedFiles))), ("numberOfImportedFiles", .int(Int64(importedFiles))),
            ("numberOfFilesWithCustomerError", .int(Int64(customerErrors))),
            ("numberOfFilesWithServerError", .int(Int64(serverErrors))),
            ("numberOfGeneratedImageSets", .int(Int64(generatedImageSets))), ("numberOfBytesRead", .int(Int64(bytesRead))),
        ])
    }
}

/// `DatastoreProperties` (spec Appendix A).
public struct DatastoreProperties: Hashable, Sendable {
    public var datastoreId: String
    public var datastoreName: String
    public var datastoreStatus: DatastoreStatus
    public var losslessStorageFormat: LosslessStorageFormat
    public var createdAt: Double
    public var updatedAt: Double

    public init(
        datastoreId: String, datastoreName: String, datastoreStatus: DatastoreStatus,
        losslessStorageFormat: LosslessStorageFormat = .htj2k, createdAt: Double, updatedAt: Double
    ) {
        self.datastoreId = datastoreId
        self.datastoreName = datastoreName
        self.datastoreStatus = datastoreStatus
        self.losslessStorageFormat = losslessStorageFormat
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The wire form of GetDatastore and ListDatastores, with the data store's ARN.
    public func json(arn: ResourceARN) -> JSONValue {
        .object([
            ("datastoreId", .string(datastoreId)), ("datastoreName", .string(datastoreName)),
            ("datastoreStatus", .string(datastoreStatus.rawValue)), ("datastoreArn", .string(arn.datastore(datastoreId))),
            ("losslessStorageFormat", .string(losslessStorageFormat.rawValue)), ("createdAt", .double(createdAt)),
            ("updatedAt", .double(updatedAt)),
        ])
    }
}
