public import DICOMIngestModel

extension ImageSetRecord {
    /// The `DICOMTags` of an `ImageSetsMetadataSummary` (spec Appendix A), from the grouping key.
    public var dicomTags: JSONValue {
        var tags: [(String, JSONValue)] = [
            ("DICOMPatientId", .string(key.patientID)), ("DICOMPatientName", .string(key.patientName)),
            ("DICOMStudyInstanceUID", .string(key.studyInstanceUID)), ("DICOMStudyId", .string(key.studyID)),
            ("DICOMAccessionNumber", .string(key.accessionNumber)),
            ("DICOMSeriesInstanceUID", .string(key.seriesInstanceUID)), ("DICOMStudyDate", .string(key.studyDate)),
        ]
        if !studyTime.isEmpty { tags.append(("DICOMStudyTime", .string(studyTime))) }
        if let number = Int32(key.seriesNumber) { tags.append(("DICOMSeriesNumber", .int(Int64(number)))) }
        return .object(tags)
    }

    /// An `ImageSetsMetadataSummary`, as SearchImageSets returns it.
    public var summaryJSON: JSONValue {
        .object([
            ("imageSetId", .string(imageSetId)), ("version", .int(Int64(latestVersion))), ("createdAt", .double(createdAt)),
            ("updatedAt", .double(updatedAt)), ("storageTier", .string("FREQUENT_ACCESS")), ("DICOMTags", dicomTags),
            ("isPrimary", .bool(isPrimary)),
        ])
    }

    /// The GetImageSet response for `version`.
    public func propertiesJSON(version: Int, arn: String) -> JSONValue {
        .object([
            ("datastoreId", .string(datastoreId)), ("imageSetId", .string(imageSetId)),
            ("versionId", .string(String(version))), ("imageSetState", .string(state)),
            ("imageSetWorkflowStatus", .string(workflowStatus)), ("createdAt", .double(createdAt)),
            ("updatedAt", .double(updatedAt)), ("imageSetArn", .string(arn)), ("isPrimary", .bool(isPrimary)),
        ])
    }
}
