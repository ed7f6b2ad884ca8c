public import DICOMCore
public import DICOMIngestModel
import Foundation

/// The level a QIDO-RS search answers at (PS3.18 §10.6.1): `/studies`, `/series`, `/instances`.
public enum SearchLevel: Int, Comparable, Hashable, Sendable {
    case study
    case series
    case instance

    public static func < (lhs: SearchLevel, rhs: SearchLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// An attribute the catalog keeps in typed columns for QIDO-RS: the query keys of `../shared/spec/dicomweb.md` §3,
/// the default return attributes of PS3.18 Table 10.6.3-3, and what OHIF asks with `includefield`. The study row
/// holds the patient and study modules', the series row the series', the instance row the instance's.
public enum SearchAttribute: CaseIterable, Hashable, Sendable {
    case studyInstanceUID, studyDate, studyTime, accessionNumber, referringPhysicianName, studyDescription, studyID
    case patientName, patientID, patientBirthDate, patientBirthTime, patientSex
    case seriesInstanceUID, modality, seriesNumber, seriesDescription, seriesDate, seriesTime
    case sopInstanceUID, sopClassUID, instanceNumber, performedProcedureStepStartDate, performedProcedureStepStartTime
    case rows, columns, bitsAllocated, numberOfFrames

    public var tag: DICOMTag {
        switch self {
        case .studyInstanceUID: .studyInstanceUID
        case .studyDate: .studyDate
        case .studyTime: .studyTime
        case .accessionNumber: .accessionNumber
        case .referringPhysicianName: DICOMTag(group: 0x0008, element: 0x0090)
        case .studyDescription: .studyDescription
        case .studyID: .studyID
        case .patientName: .patientName
        case .patientID: .patientID
        case .patientBirthDate: .patientBirthDate
        case .patientBirthTime: DICOMTag(group: 0x0010, element: 0x0032)
        case .patientSex: .patientSex
        case .seriesInstanceUID: .seriesInstanceUID
        case .modality: .modality
        case .seriesNumber: .seriesNumber
        case .seriesDescription: .seriesDescription
        case .seriesDate: DICOMTag(group: 0x0008, element: 0x0021)
        case .seriesTime: DICOMTag(group: 0x0008, element: 0x0031)
        case .sopInstanceUID: .sopInstanceUID
        case .sopClassUID: .sopClassUID
        case .instanceNumber: .instanceNumber
        case .performedProcedureStepStartDate: DICOMTag(group: 0x0040, element: 0x0244)
        case .performedProcedureStepStartTime: DICOMTag(group: 0x0040, element: 0x0245)
        case .rows: .rows
        case .columns: .columns
        case .bitsAllocated: .bitsAllocated
        case .numberOfFrames: .numberOfFrames
        }
    }

    /// The row that holds it.
    public var level: SearchLevel {
        switch self {
        case .studyInstanceUID, .studyDate, .studyTime, .accessionNumber, .referringPhysicianName, .studyDescription,
            .studyID, .patientName, .patientID, .patientBirthDate, .patientBirthTime, .patientSex:
            .study
        case .seriesInstanceUID, .modality, .seriesNumber, .seriesDescription, .seriesDate, .seriesTime: .series
        default: .instance
        }
    }

    /// The catalog column that holds it (the same name in the study, series and instance rows).
    public var column: String {
        switch self {
        case .studyInstanceUID: "study_uid"
        case .studyDate: "study_date"
        case .studyTime: "study_time"
        case .accessionNumber: "accession_number"
        case .referringPhysicianName: "referring_physician_name"
        case .studyDescription: "study_description"
        case .studyID: "study_id"
        case .patientName: "patient_name"
        case .patientID: "patient_id"
        case .patientBirthDate: "patient_birth_date"
        case .patientBirthTime: "patient_birth_time"
        case .patientSex: "patient_sex"
        case .seriesInstanceUID: "series_uid"
        case .modality: "modality"
        case .seriesNumber: "series_number"
        case .seriesDescription: "series_description"
        case .seriesDate: "series_date"
        case .seriesTime: "series_time"
        case .sopInstanceUID: "sop_uid"
        case .sopClassUID: "sop_class_uid"
        case .instanceNumber: "instance_number"
        case .performedProcedureStepStartDate: "pps_start_date"
        case .performedProcedureStepStartTime: "pps_start_time"
        case .rows: "pixel_rows"
        case .columns: "pixel_columns"
        case .bitsAllocated: "bits_allocated"
        case .numberOfFrames: "number_of_frames"
        }
    }

    /// Held as an integer column (IS and US values), matched and ordered as numbers.
    public var isInteger: Bool {
        switch self {
        case .seriesNumber, .instanceNumber, .rows, .columns, .bitsAllocated, .numberOfFrames: true
        default: false
        }
    }

    /// Person names also keep their name components, upper-cased, for `fuzzymatching` (`wordsColumn`).
    public var isPersonName: Bool { self == .patientName || self == .referringPhysicianName }

    /// `" DOE JOHN"`: each component of a person name after a space, so that a component's start is `% X`.
    public var wordsColumn: String? { isPersonName ? column + "_words" : nil }

    public var vr: VR { DICOMDictionary.entry(for: tag)?.vr ?? .LO }

    /// The attributes held at `level`.
    public static func held(at level: SearchLevel) -> [SearchAttribute] { allCases.filter { $0.level == level } }

    /// A query key: a keyword or `GGGGEEEE`.
    public init?(key: String) {
        let tag: DICOMTag?
        if key.utf8.count == 8, let parsed = DICOMTag(hexKey: key) { tag = parsed } else { tag = DICOMDictionary.tag(forKeyword: key) }
        guard let tag, let attribute = Self.allCases.first(where: { $0.tag == tag }) else { return nil }
        self = attribute
    }
}

/// How a query key matches (PS3.4 C.2.2.2, as PS3.18 §10.6.1.3 uses it): the value (`=`), one of a UID list
/// (`\`), a wildcard pattern (`*`, `?`), a date or time range (`A-B`, `A-`, `-B`), or with `fuzzymatching` the
/// start of any name component, case aside.
public enum SearchCondition: Hashable, Sendable {
    case equal(String)
    case anyOf([String])
    case pattern(String)
    case range(lower: String, upper: String)
    case nameStart(String)
}

/// One query key's condition.
public struct SearchMatch: Hashable, Sendable {
    public var attribute: SearchAttribute
    public var condition: SearchCondition

    public init(attribute: SearchAttribute, condition: SearchCondition) {
        self.attribute = attribute
        self.condition = condition
    }
}

/// A QIDO-RS search (PS3.18 §10.6) as HealthImaging takes it (`../shared/spec/dicomweb.md` §3): its level, the
/// study and series of its path, its matches, what to return, and its page.
public struct DICOMwebQuery: Hashable, Sendable {
    public var level: SearchLevel
    public var matches: [SearchMatch] = []
    /// ModalitiesInStudy (0008,0061): studies with a series of one of these.
    public var modalitiesInStudy: [String] = []
    /// The image set to search (primary or not); else primary image sets only.
    public var imageSetId: String?
    public var includeAll = false
    public var includedTags: Set<DICOMTag> = []
    public var limit = DICOMwebQuery.maximumLimit
    public var offset = 0
    /// What the query asked that is ignored, for a `Warning` header (PS3.18 §8.3.5.1).
    public var ignored: [String] = []

    public static let maximumLimit = 1_000
    /// With `maximumLimit`, the first 10,000 matches are reachable (HealthImaging's bound).
    public static let maximumOffset = 9_000
    public static let maximumIncludeFields = 50

    public init(level: SearchLevel) {
        self.level = level
    }

    /// Whether an answer needs attributes the typed columns do not hold (`includefield` beyond them).
    /// A tag the stored data sets hold at another level (Modality asked of a study search, say) is not: the answer
    /// has no value of it to give.
    public var needsStoredAttributes: Bool {
        if includeAll { return true }
        let held = Set(SearchAttribute.allCases.filter { $0.level <= level }.map(\.tag))
        return includedTags.contains { tag in
            !held.contains(tag) && !DICOMwebSearch.computedTags.contains(tag) && Self.storedLevels(level).contains(MetadataLevel.of(tag))
        }
    }

    /// The levels of the stored data sets an answer at `level` reads.
    static func storedLevels(_ level: SearchLevel) -> Set<MetadataLevel> {
        switch level {
        case .study: [.patient, .study]
        case .series: [.patient, .study, .series]
        case .instance: [.patient, .study, .series, .instance]
        }
    }

    /// A query from its path (`study`, `series`, already checked UIDs) and its query parameters, decoded.
    /// - Throws: a validation error (400) for a value that cannot be matched, a bad page, or too many fields.
    public static func parse(
        level: SearchLevel, study: String? = nil, series: String? = nil, parameters: [(String, String)]
    ) throws -> DICOMwebQuery {
        var query = DICOMwebQuery(level: level)
        if let study { query.matches.append(SearchMatch(attribute: .studyInstanceUID, condition: .equal(study))) }
        if let series { query.matches.append(SearchMatch(attribute: .seriesInstanceUID, condition: .equal(series))) }
        var fuzzy = false
        var keys: [(SearchAttribute?, String, String)] = []
        var seen = Set<String>()
        var includes = 0
        for (name, value) in parameters {
            switch name {
            case "limit":
                guard let number = Int(value), number >= 1 else {
                    throw IngestServiceError.validation("limit \"\(value.prefix(32))\" is not a whole number from 1")
                }
                if number > maximumLimit { query.ignored.append("limit past \(maximumLimit)") }
                query.limit = min(number, maximumLimit)
            case "offset":
                guard let number = Int(value), (0...maximumOffset).contains(number) else {
                    throw IngestServiceError.validation("offset \"\(value.prefix(32))\" is not a whole number from 0 to \(maximumOffset)")
                }
                query.offset = number
            case "fuzzymatching":
                guard value == "true" || value == "false" else {
                    throw IngestServiceError.validation("fuzzymatching is true or false, not \"\(value.prefix(32))\"")
                }
                fuzzy = value == "true"
            case "includefield":
                for field in value.split(separator: ",") {
                    includes += 1
                    guard includes <= maximumIncludeFields else {
                        throw IngestServiceError.validation("At most \(maximumIncludeFields) includefield values are taken")
                    }
                    let text = field.trimmingCharacters(in: .whitespaces)
                    if text == "all" {
                        query.includeAll = true
                        continue
                    }
                    // A sequence path (`00081032.00080100`) includes its top-level sequence.
                    let head = String(text.split(separator: ".", maxSplits: 1).first ?? "")
                    let tag = head.utf8.count == 8 ? DICOMTag(hexKey: head) : DICOMDictionary.tag(forKeyword: head)
                    if let tag { query.includedTags.insert(tag) } else { query.ignored.append("includefield \(text.prefix(64))") }
                }
            case "imageSetId":
                guard Validation.isResourceId(value) else {
                    throw IngestServiceError.validation("imageSetId \"\(value.prefix(64))\" is not an image set ID")
                }
                query.imageSetId = value
            default:
                guard seen.insert(name).inserted else {
                    throw IngestServiceError.validation("The query key \(name.prefix(64)) is given more than once")
                }
                keys.append((SearchAttribute(key: name), name, value))
            }
        }
        for (attribute, name, value) in keys {
            if name == "ModalitiesInStudy" || name == "00080061" {
                guard level == .study else {
                    query.ignored.append(String(name.prefix(64)))
                    continue
                }
                query.modalitiesInStudy = value.split(separator: "\\").map(String.init).filter { !$0.isEmpty }
                continue
            }
            guard let attribute, attribute.level <= level else {
                query.ignored.append(String(name.prefix(64)))
                continue
            }
            guard !value.isEmpty else { continue }  // universal matching (PS3.4 C.2.2.2.3)
            query.matches.append(SearchMatch(attribute: attribute, condition: try condition(attribute, value, fuzzy: fuzzy)))
        }
        return query
    }

    /// The condition of one non-empty query value.
    static func condition(_ attribute: SearchAttribute, _ value: String, fuzzy: Bool) throws -> SearchCondition {
        let name = DICOMDictionary.entry(for: attribute.tag)?.keyword ?? attribute.tag.hexKey
        guard value.utf8.count <= 1_024 else { throw IngestServiceError.validation("The value of \(name) is longer than 1,024 bytes") }
        switch attribute.vr {
        case .UI:
            let uids = value.split(separator: "\\").map(String.init)
            return uids.count == 1 ? .equal(uids[0]) : .anyOf(uids)
        case .DA, .TM:
            let isDate = attribute.vr == .DA
            let allowed: (UInt8) -> Bool = { (0x30...0x39).contains($0) || (!isDate && ($0 == 0x2E || $0 == 0x3A)) }
            let parts = value.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, parts.allSatisfy({ $0.utf8.allSatisfy(allowed) }),
                parts.allSatisfy({ !isDate || $0.isEmpty || $0.utf8.count == 8 }), parts.contains(where: { !$0.isEmpty })
            else {
                throw IngestServiceError.validation(
                    "\(name) \"\(value.prefix(64))\" is not a \(isDate ? "date (YYYYMMDD)" : "time (HHMMSS)") or a range of them")
            }
            let strip = { (text: String) in text.replacingOccurrences(of: ":", with: "") }
            return parts.count == 1 ? .equal(strip(parts[0])) : .range(lower: strip(parts[0]), upper: strip(parts[1]))
        default:
            if attribute.isInteger {
                guard let number = Int(value.trimmingCharacters(in: .whitespaces)) else {
                    throw IngestServiceError.validation("\(name) \"\(value.prefix(64))\" is not a whole number")
                }
                return .equal(String(number))
            }
            if fuzzy, attribute.isPersonName { return .nameStart(value.uppercased()) }
            if value.contains("*") || value.contains("?") { return .pattern(value) }
            return .equal(value)
        }
    }
}

/// One match of a QIDO-RS search, as the catalog found it.
public struct DICOMwebMatch: Sendable {
    /// The typed columns' values (multiple values joined by `\`), integers as decimal text.
    public var values: [SearchAttribute: String]
    /// Study level: the modalities of its series, sorted; and the study's series and instances.
    public var modalitiesInStudy: [String] = []
    public var relatedSeries: Int?
    public var relatedInstances: Int
    /// The image set it was read from (the study's most recently updated series at study level).
    public var imageSetId: String
    /// With `needsStoredAttributes`: the stored attributes down to the query's level, and their private VRs.
    public var stored: [(String, JSONValue)]?
    public var vrs: [String: String] = [:]

    public init(values: [SearchAttribute: String], relatedInstances: Int, imageSetId: String) {
        self.values = values
        self.relatedInstances = relatedInstances
        self.imageSetId = imageSetId
    }
}

/// What QIDO-RS writes: the typed values a catalog keeps of each level, and the DICOM JSON answer.
public enum DICOMwebSearch {
    /// The computed attributes (PS3.18 §10.6.3.3.1) and RetrieveURL, which no stored data set holds.
    static let computedTags: Set<DICOMTag> = [
        DICOMTag(group: 0x0008, element: 0x0061), DICOMTag(group: 0x0020, element: 0x1206),
        DICOMTag(group: 0x0020, element: 0x1208), DICOMTag(group: 0x0020, element: 0x1209),
        DICOMTag(group: 0x0008, element: 0x1190),
    ]

    /// The study and series values of an image set's version, from its `DICOM` objects of each level.
    public static func seriesValues(patient: [UInt8], study: [UInt8], series: [UInt8]) -> [SearchAttribute: String] {
        var members: [(String, JSONValue)] = []
        for piece in [patient, study, series] {
            if case .object(let object)? = try? JSONValue.parse(piece) { members.append(contentsOf: object) }
        }
        return values(of: SearchAttribute.allCases.filter { $0.level != .instance }, in: members)
    }

    /// The instance values of an instance entry of a metadata document (`{"DICOM": {…}, …}`).
    public static func instanceValues(instanceJSON: [UInt8]) -> [SearchAttribute: String] {
        guard case .object(let members)? = (try? JSONValue.parse(instanceJSON))?["DICOM"] else { return [:] }
        return values(of: SearchAttribute.held(at: .instance), in: members)
    }

    static func values(of attributes: [SearchAttribute], in members: [(String, JSONValue)]) -> [SearchAttribute: String] {
        var wanted: [String: SearchAttribute] = [:]
        for attribute in attributes {
            if let keyword = DICOMDictionary.entry(for: attribute.tag)?.keyword { wanted[keyword] = attribute }
        }
        var values: [SearchAttribute: String] = [:]
        for (key, value) in members {
            guard let attribute = wanted[key] else { continue }
            let text = self.text(value)
            if attribute.isInteger {
                if let first = text.split(separator: "\\").first, let number = Int(first.trimmingCharacters(in: .whitespaces)) {
                    values[attribute] = String(number)
                }
            } else if !text.isEmpty {
                values[attribute] = text
            }
        }
        return values
    }

    /// A document value as text: strings as they are (IS trimmed), numbers in decimal, several joined by `\`.
    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return text
        case .int(let number): return String(number)
        case .uint(let number): return String(number)
        case .double(let number): return String(number)
        case .array(let items): return items.map(text).joined(separator: "\\")
        default: return ""
        }
    }

    /// `" DOE JOHN"`: a person name's components (across its groups), upper-cased, each after a space.
    public static func nameWords(_ name: String) -> String {
        let words = name.uppercased().split(whereSeparator: { $0 == "^" || $0 == "=" || $0 == " " || $0 == "\\" })
        return words.map { " " + $0 }.joined()
    }

    /// The answer: a DICOM JSON array (PS3.18 F.2) of each match's default attributes for the level (PS3.18 Table
    /// 10.6.3-3, the values the columns hold), its computed attributes, RetrieveURL under `baseURI`
    /// (`…/datastore/{id}`), and the stored attributes `includefield` asks for.
    public static func answer(_ matches: [DICOMwebMatch], query: DICOMwebQuery, baseURI: String) -> [UInt8] {
        var output: [UInt8] = [UInt8(ascii: "[")]
        for (index, match) in matches.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            let elements = elements(match, query: query, baseURI: baseURI)
            DICOMJSON.writeElements(elements, vrs: match.vrs, to: &output)
        }
        output.append(UInt8(ascii: "]"))
        return output
    }

    /// A match's elements in tag order: its values, computed attributes, RetrieveURL, and the stored attributes
    /// asked.
    static func elements(_ match: DICOMwebMatch, query: DICOMwebQuery, baseURI: String) -> [(tag: DICOMTag, vr: VR, value: JSONValue)] {
        var elements: [DICOMTag: (VR, JSONValue)] = [:]
        for attribute in SearchAttribute.allCases where attribute.level <= query.level {
            guard let text = match.values[attribute], !text.isEmpty else { continue }
            let vr = attribute.vr
            if vr == .US, let number = Int64(text) {
                elements[attribute.tag] = (vr, .int(number))
            } else {
                let parts = text.split(separator: "\\", omittingEmptySubsequences: false).map { JSONValue.string(String($0)) }
                elements[attribute.tag] = (vr, parts.count == 1 ? parts[0] : .array(parts))
            }
        }
        func integer(_ element: UInt16, _ value: Int) {
            elements[DICOMTag(group: 0x0020, element: element)] = (.IS, .int(Int64(value)))
        }
        let study = match.values[.studyInstanceUID] ?? ""
        let series = match.values[.seriesInstanceUID] ?? ""
        var url = baseURI + "/studies/" + study
        switch query.level {
        case .study:
            if !match.modalitiesInStudy.isEmpty {
                elements[DICOMTag(group: 0x0008, element: 0x0061)] = (.CS, .array(match.modalitiesInStudy.map(JSONValue.string)))
            }
            integer(0x1206, match.relatedSeries ?? 1)
            integer(0x1208, match.relatedInstances)
        case .series:
            integer(0x1209, match.relatedInstances)
            url += "/series/" + series
        case .instance:
            url += "/series/" + series + "/instances/" + (match.values[.sopInstanceUID] ?? "")
        }
        if let imageSetId = query.imageSetId { url += "?imageSetId=" + imageSetId }
        elements[DICOMTag(group: 0x0008, element: 0x1190)] = (.UR, .string(url))
        if let stored = match.stored {
            let omitted: Set<DICOMTag> = [.pixelData, .floatPixelData, .doubleFloatPixelData]
            for (key, value) in stored {
                guard let (tag, vr) = DICOMJSON.tagAndVR(key, value: value, vrs: match.vrs), elements[tag] == nil,
                    !omitted.contains(tag), tag.group != 0x0002, query.includeAll || query.includedTags.contains(tag)
                else { continue }
                elements[tag] = (vr, value)
            }
        }
        return elements.sorted { $0.key < $1.key }.map { (tag: $0.key, vr: $0.value.0, value: $0.value.1) }
    }

    /// The stored attributes of a match down to `level`: the patient, study and series `DICOM` objects, and the
    /// instance entry's `DICOM` (with its `DICOMVRs`) at instance level.
    public static func storedAttributes(
        level: SearchLevel, patient: [UInt8], study: [UInt8], series: [UInt8], instanceJSON: [UInt8]?
    ) -> (attributes: [(String, JSONValue)], vrs: [String: String]) {
        var attributes: [(String, JSONValue)] = []
        let pieces = level == .study ? [patient, study] : [patient, study, series]
        for piece in pieces {
            if case .object(let members)? = try? JSONValue.parse(piece) { attributes.append(contentsOf: members) }
        }
        var vrs: [String: String] = [:]
        if level == .instance, let instanceJSON, let entry = try? JSONValue.parse(instanceJSON) {
            if case .object(let members)? = entry["DICOM"] { attributes.append(contentsOf: members) }
            if case .object(let members)? = entry["DICOMVRs"] {
                for case (let key, .string(let vr)) in members { vrs[key] = vr }
            }
        }
        return (attributes, vrs)
    }
}
