/// Decides, for the instances of one series imported by one job, which go to the primary image set and which
/// to non-primary ones (spec §4). Pure: no I/O, the same answer whatever order the files were read in.
///
/// Rules:
/// 1. The primary image set's key is the existing primary's, if the data store has one for the series; otherwise
///    the key shared by most SOP instances, ties broken by the key of the instance whose input key sorts first.
/// 2. Instances with the primary key go to the primary image set; each other distinct key gets one new
///    non-primary image set in this job.
/// 3. Every file is imported (spec §4.3: imports never deduplicate). Files of one image set that hold the same
///    SOP Instance UID overwrite one another as successive imports would: the file whose input key sorts last
///    is the one the new version holds, the others are recorded as overwritten by it.
public enum ImageSetGrouping {
    public struct Candidate: Hashable, Sendable {
        public var inputKey: String
        public var sopInstanceUID: String
        public var key: ImageSetKey

        public init(inputKey: String, sopInstanceUID: String, key: ImageSetKey) {
            self.inputKey = inputKey
            self.sopInstanceUID = sopInstanceUID
            self.key = key
        }
    }

    /// A file of the group whose SOP instance a later file of the same group overwrote.
    public struct Overwrite: Hashable, Sendable {
        /// The overwritten candidate.
        public var copy: Int
        /// The candidate the new version holds for that SOP Instance UID.
        public var by: Int

        public init(copy: Int, by: Int) {
            self.copy = copy
            self.by = by
        }
    }

    public struct Group: Hashable, Sendable {
        public var key: ImageSetKey
        public var isPrimary: Bool
        /// Indices of the candidates the new version holds, one per SOP Instance UID, sorted by input key.
        public var members: [Int]
        /// Candidates overwritten by a copy of the same SOP instance in this group, sorted by input key.
        public var overwritten: [Overwrite]

        public init(key: ImageSetKey, isPrimary: Bool, members: [Int], overwritten: [Overwrite] = []) {
            self.key = key
            self.isPrimary = isPrimary
            self.members = members
            self.overwritten = overwritten
        }
    }

    /// The primary group first (if any instance has the primary key), then non-primary groups by key.
    public static func decide(_ candidates: [Candidate], existingPrimaryKey: ImageSetKey?) -> [Group] {
        guard !candidates.isEmpty else { return [] }
        let order = candidates.indices.sorted { candidates[$0].inputKey < candidates[$1].inputKey }

        var byKey: [ImageSetKey: [Int]] = [:]
        for index in order { byKey[candidates[index].key, default: []].append(index) }

        let primaryKey: ImageSetKey
        if let existingPrimaryKey {
            primaryKey = existingPrimaryKey
        } else {
            var firstSeen: [ImageSetKey: Int] = [:]
            for (position, index) in order.enumerated() where firstSeen[candidates[index].key] == nil {
                firstSeen[candidates[index].key] = position
            }
            let instanceCounts = byKey.mapValues { Set($0.map { candidates[$0].sopInstanceUID }).count }
            primaryKey = byKey.keys.max { lhs, rhs in
                if instanceCounts[lhs]! != instanceCounts[rhs]! { return instanceCounts[lhs]! < instanceCounts[rhs]! }
                return firstSeen[lhs]! > firstSeen[rhs]!
            }!
        }

        func group(_ key: ImageSetKey, isPrimary: Bool, _ indices: [Int]) -> Group {
            var lastBySOP: [String: Int] = [:]
            for index in indices { lastBySOP[candidates[index].sopInstanceUID] = index }
            var members: [Int] = []
            var overwritten: [Overwrite] = []
            for index in indices {
                let last = lastBySOP[candidates[index].sopInstanceUID]!
                if last == index { members.append(index) } else { overwritten.append(Overwrite(copy: index, by: last)) }
            }
            return Group(key: key, isPrimary: isPrimary, members: members, overwritten: overwritten)
        }

        var groups: [Group] = []
        if let indices = byKey.removeValue(forKey: primaryKey) {
            groups.append(group(primaryKey, isPrimary: true, indices))
        }
        for key in byKey.keys.sorted() {
            groups.append(group(key, isPrimary: false, byKey[key]!))
        }
        return groups
    }
}
