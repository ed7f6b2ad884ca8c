public import DICOMIngestModel

/// What UpdateImageSetMetadata does to an image set (spec §1): changes to its metadata, or a return to an earlier
/// version. Either way the image set gets one new version; earlier versions stay as they were.
public enum ImageSetUpdate: Sendable {
    case changes(MetadataChanges)
    case revert(toVersion: Int)
}

/// The `DICOMUpdates` of an UpdateImageSetMetadata call, parsed and checked: attributes to set and to remove at each
/// level of the metadata document (spec §3.1), and instances to remove.
///
/// Decisions where HealthImaging's behaviour is not documented: only members of `DICOM` objects change (the keys
/// AWS generates are refused: `SchemaVersion` beyond its own line, `DatastoreID`, `ImageSetID`, `PixelData`,
/// frame checksums and sizes, `ImageFrames`); `StudyInstanceUID` and `StudyID` change only with `force`, and not
/// on a primary image set, whose patient and series levels do not change either (`check(primary:)`), as AWS
/// documents; `SeriesInstanceUID` and `SOPInstanceUID` are refused (they name the image set's series and the
/// instances), as is a series other than the image set's. The attribute rules HealthImaging documents are
/// `MetadataUpdateRules`.
public struct MetadataChanges: Sendable {
    /// Changes to one `DICOM` object: members set (replaced in place, or added at the end) and members removed.
    public struct Level: Sendable {
        public var updated: [(String, JSONValue)] = []
        public var removed: [String] = []

        public var isEmpty: Bool { updated.isEmpty && removed.isEmpty }
    }

    public var patient = Level()
    public var study = Level()
    public var series = Level()
    /// By SOP Instance UID.
    public var instances: [String: Level] = [:]
    public var removedInstances: [String] = []
    /// `includeStudyImageSets`: the study level's changes go to every other image set of the study in the data
    /// store too (a new version each, in the same transaction), so that the image sets of one study keep one
    /// study level. Patient, series and instance levels stay the image set's own (a primary image set's patient
    /// level cannot change, so carrying it over would fail wherever a study has one).
    public var includeStudyImageSets = false

    /// The changes the other image sets of the study get: the study level's.
    public var studyLevel: MetadataChanges {
        var shared = MetadataChanges()
        shared.study = study
        return shared
    }

    public var isEmpty: Bool {
        patient.isEmpty && study.isEmpty && series.isEmpty && instances.isEmpty && removedInstances.isEmpty
    }

    /// Attribute keywords that only AWS writes.
    static let generated: Set<String> = [
        "SchemaVersion", "DatastoreID", "ImageSetID", "PixelData", "Checksum", "Width", "Height", "MinPixelValue",
        "MaxPixelValue", "FrameSizeInBytes",
    ]
    static let needForce: Set<String> = ["StudyInstanceUID", "StudyID"]
    static let identities: Set<String> = ["SeriesInstanceUID", "SOPInstanceUID"]

    /// - Parameters:
    ///   - updatable, removable: the decoded `updatableAttributes` and `removableAttributes` documents.
    ///   - seriesInstanceUID: the image set's series, the only one the documents may name.
    /// - Throws: `ValidationException` naming what is wrong.
    public static func parse(
        updatable: [UInt8]?, removable: [UInt8]?, seriesInstanceUID: String, force: Bool
    ) throws(IngestServiceError) -> MetadataChanges {
        var changes = MetadataChanges()
        for (bytes, removing) in [(updatable, false), (removable, true)] {
            guard let bytes else { continue }
            let name = removing ? "removableAttributes" : "updatableAttributes"
            try MetadataUpdateRules.checkText(bytes, name)
            let document: JSONValue
            do {
                document = try JSONValue.parse(bytes)
            } catch {
                throw .validation("\(name) is not valid JSON: \(error)")
            }
            try MetadataUpdateRules.checkStructure(document, name)
            try changes.take(document, removing: removing, series: seriesInstanceUID, force: force)
        }
        guard !changes.isEmpty else { throw .validation("DICOMUpdates changes nothing") }
        return changes
    }

    private mutating func take(_ document: JSONValue, removing: Bool, series uid: String, force: Bool) throws(IngestServiceError) {
        guard case .object(let top) = document else { throw .validation("An update document must be a JSON object") }
        for (name, value) in top {
            switch name {
            case "SchemaVersion": continue
            case "Patient":
                _ = try Self.level(value, "Patient", .patient, removing: removing, force: force, into: &patient, child: nil)
            case "Study":
                let seriesMap = try Self.level(value, "Study", .study, removing: removing, force: force, into: &study, child: "Series")
                guard let seriesMap else { continue }
                guard case .object(let entries) = seriesMap else { throw .validation("Study.Series must be an object") }
                for (key, entry) in entries {
                    guard key == uid else {
                        throw .validation("Series \(key) is not the series of this image set (\(uid))")
                    }
                    let instancesMap = try Self.level(
                        entry, "Series", .series, removing: removing, force: force, into: &series, child: "Instances")
                    guard let instancesMap else { continue }
                    guard case .object(let instances) = instancesMap else { throw .validation("Series.Instances must be an object") }
                    for (sop, instance) in instances {
                        if removing, case .object(let members) = instance, members.isEmpty {
                            removedInstances.append(sop)
                            continue
                        }
                        var level = self.instances[sop] ?? Level()
                        _ = try Self.level(
                            instance, "Instance \(sop)", .instance, removing: removing, force: force, into: &level, child: nil)
                        self.instances[sop] = level
                    }
                }
            default:
                throw .validation("An update document may hold SchemaVersion, Patient and Study, not \(name)")
            }
        }
    }

    /// Takes one level's `DICOM` attributes into `level`, and returns its child map (`child`) when it has one.
    private static func level(
        _ value: JSONValue, _ place: String, _ metadataLevel: MetadataLevel, removing: Bool, force: Bool,
        into level: inout Level, child: String?
    ) throws(IngestServiceError) -> JSONValue? {
        guard case .object(let members) = value else { throw .validation("\(place) must be an object") }
        var childValue: JSONValue?
        for (name, member) in members {
            if name == child {
                childValue = member
                continue
            }
            guard name == "DICOM" else { throw .validation("\(place) may hold DICOM\(child.map { " and \($0)" } ?? ""), not \(name)") }
            guard case .object(let attributes) = member else { throw .validation("\(place).DICOM must be an object") }
            for (keyword, attribute) in attributes {
                if generated.contains(keyword) { throw .validation("\(keyword) is generated by the service and cannot be changed") }
                if identities.contains(keyword) { throw .validation("\(keyword) names the image set's series or instances and cannot be changed") }
                if needForce.contains(keyword) && !force { throw .validation("Changing \(keyword) needs force=true") }
                try MetadataUpdateRules.check(
                    keyword, removing ? nil : attribute, level: metadataLevel, place: place, force: force)
                if removing { level.removed.append(keyword) } else { level.updated.append((keyword, attribute)) }
            }
        }
        return childValue
    }

    /// HealthImaging's rule for primary image sets (spec §4.2): their patient- and series-level attributes do not
    /// change, and `force` does not let their StudyInstanceUID or StudyID change; the way is to copy the image set
    /// to a non-primary one, update that, and copy it back.
    /// - Throws: `ImageSetStoreError(.invalid)` naming the rule.
    public func check(primary: Bool) throws {
        guard primary else { return }
        if !patient.isEmpty || !series.isEmpty {
            throw ImageSetStoreError(
                .invalid, "Patient- and series-level attributes of a primary image set cannot be updated; update a non-primary copy")
        }
        let touched = Set(study.updated.map(\.0) + study.removed)
        if let keyword = touched.intersection(Self.needForce).sorted().first {
            throw ImageSetStoreError(.invalid, "\(keyword) of a primary image set cannot be changed, even with force")
        }
    }

    /// A `DICOM` object (compact JSON) with a level's changes applied; members keep their order.
    public static func apply(_ level: Level, toDICOM object: [UInt8]) throws -> [UInt8] {
        guard !level.isEmpty else { return object }
        guard case .object(var members) = try JSONValue.parse(object) else { return object }
        members.removeAll { level.removed.contains($0.0) }
        for (name, value) in level.updated {
            if let index = members.firstIndex(where: { $0.0 == name }) { members[index].1 = value } else { members.append((name, value)) }
        }
        try MetadataUpdateRules.checkCreators(level.updated.map(\.0), in: members)
        var out: [UInt8] = []
        JSONValue.object(members).write(to: &out)
        return out
    }

    /// An instance entry (compact JSON) with its `DICOM` member changed.
    public static func apply(_ level: Level, toInstance entry: [UInt8]) throws -> [UInt8] {
        guard case .object(var members) = try JSONValue.parse(entry) else { return entry }
        guard let index = members.firstIndex(where: { $0.0 == "DICOM" }) else { return entry }
        var dicom: [UInt8] = []
        members[index].1.write(to: &dicom)
        members[index].1 = try JSONValue.parse(try apply(level, toDICOM: dicom))
        var out: [UInt8] = []
        JSONValue.object(members).write(to: &out)
        return out
    }
}

/// A CopyImageSet request (spec §1), as the catalog carries it out.
public struct ImageSetCopy: Sendable {
    /// HealthImaging's quota of image frames per copy (spec §8).
    public static let maxFrames = 1_000

    public struct Destination: Sendable {
        public var imageSetId: String
        public var latestVersion: Int

        public init(imageSetId: String, latestVersion: Int) {
            self.imageSetId = imageSetId
            self.latestVersion = latestVersion
        }
    }

    public var sourceImageSetId: String
    public var sourceLatestVersion: Int
    /// SOP Instance UIDs to copy (`copiableAttributes`); nil copies every instance.
    public var instances: [String]?
    /// Nil copies into a new image set.
    public var destination: Destination?
    /// Copy into a destination whose patient, study or series metadata differ from the source's (the destination's stay).
    public var force: Bool
    /// Make the new image set the series' primary one (refused when the series has one).
    public var promoteToPrimary: Bool

    public init(
        sourceImageSetId: String, sourceLatestVersion: Int, instances: [String]? = nil, destination: Destination? = nil,
        force: Bool = false, promoteToPrimary: Bool = false
    ) {
        self.sourceImageSetId = sourceImageSetId
        self.sourceLatestVersion = sourceLatestVersion
        self.instances = instances
        self.destination = destination
        self.force = force
        self.promoteToPrimary = promoteToPrimary
    }

    /// The SOP Instance UIDs `copiableAttributes` names: `{"SchemaVersion":1.1,"Study":{"Series":{"<series>":
    /// {"Instances":{"<sop>":{},…}}}}}`.
    /// - Throws: `ValidationException` for anything else.
    public static func instances(copiableAttributes text: String, seriesInstanceUID: String) throws(IngestServiceError) -> [String] {
        guard case .object(let top)? = try? JSONValue.parse(Array(text.utf8)) else {
            throw .validation("copiableAttributes is not a JSON object")
        }
        var chosen: [String] = []
        for (name, value) in top {
            switch name {
            case "SchemaVersion": continue
            case "Study":
                guard case .object(let study) = value else { throw .validation("copiableAttributes.Study must be an object") }
                for (member, seriesMap) in study {
                    guard member == "Series", case .object(let entries) = seriesMap else {
                        throw .validation("copiableAttributes.Study may hold Series only")
                    }
                    for (uid, entry) in entries {
                        guard uid == seriesInstanceUID else { throw .validation("Series \(uid) is not the series of the source image set") }
                        guard case .object(let series) = entry, case .object(let instances)? = series.first(where: { $0.0 == "Instances" })?.1 else {
                            throw .validation("copiableAttributes names instances under Study.Series.<series>.Instances")
                        }
                        chosen += instances.map(\.0)
                    }
                }
            default:
                throw .validation("copiableAttributes may hold SchemaVersion and Study, not \(name)")
            }
        }
        guard !chosen.isEmpty else { throw .validation("copiableAttributes names no instance") }
        return chosen
    }
}
