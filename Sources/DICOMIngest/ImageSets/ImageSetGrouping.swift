/// Decides, for the instances of one series imported by one job, which go to the primary image set and which
/// to non-primary ones (spec §4). Pure: no I/O, the same answer whatever order the files were read in.
///
/// Rules:
/// 1. Two files of the job with the same SOP Instance UID: the one whose input key sorts last is imported (as a
///    later import overwrites an earlier one); the others are reported as duplicates.
/// 2. The primary image set's key is the existing primary's, if the data store has one for the series; otherwise
///    the key shared by most instances, ties broken by the key of the instance whose input key sorts first.
/// 3. Instances with the primary key go to the primary image set; each other distinct key gets one new
///    non-primary image set in this job.
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

    public struct Group: Hashable, Sendable {
        public var key: ImageSetKey
        public var isPrimary: Bool
        /// Indices into the candidates, sorted by input key.
        public var members: [Int]

        public init(key: ImageSetKey, isPrimary: Bool, members: [Int]) {
            self.key = key
            self.isPrimary = isPrimary
            self.members = members
        }
    }

    public struct Decision: Hashable, Sendable {
        /// The primary group first (if any instance has the primary key), then non-primary groups by key.
        public var groups: [Group]
        /// Candidates not imported because another file of the job has the same SOP Instance UID:
        /// (loser index, winner index).
        public var duplicates: [(loser: Int, winner: Int)]

        public static func == (lhs: Decision, rhs: Decision) -> Bool {
            lhs.groups == rhs.groups && lhs.duplicates.map(\.loser) == rhs.duplicates.map(\.loser)
                && lhs.duplicates.map(\.winner) == rhs.duplicates.map(\.winner)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(groups)
        }
    }

    public static func decide(_ candidates: [Candidate], existingPrimaryKey: ImageSetKey?) -> Decision {
        let order = candidates.indices.sorted { candidates[$0].inputKey < candidates[$1].inputKey }
        var winnerBySOP: [String: Int] = [:]
        for index in order {
            winnerBySOP[candidates[index].sopInstanceUID] = index
        }
        var duplicates: [(loser: Int, winner: Int)] = []
        var kept: [Int] = []
        for index in order {
            let winner = winnerBySOP[candidates[index].sopInstanceUID]!
            if winner == index { kept.append(index) } else { duplicates.append((index, winner)) }
        }
        guard !kept.isEmpty else { return Decision(groups: [], duplicates: duplicates) }

        let primaryKey: ImageSetKey
        if let existingPrimaryKey {
            primaryKey = existingPrimaryKey
        } else {
            var counts: [ImageSetKey: Int] = [:]
            var firstSeen: [ImageSetKey: Int] = [:]
            for (position, index) in kept.enumerated() {
                counts[candidates[index].key, default: 0] += 1
                if firstSeen[candidates[index].key] == nil { firstSeen[candidates[index].key] = position }
            }
            primaryKey = counts.keys.max { lhs, rhs in
                if counts[lhs]! != counts[rhs]! { return counts[lhs]! < counts[rhs]! }
                return firstSeen[lhs]! > firstSeen[rhs]!
            }!
        }

        var byKey: [ImageSetKey: [Int]] = [:]
        for index in kept { byKey[candidates[index].key, default: []].append(index) }
        var groups: [Group] = []
        if let members = byKey.removeValue(forKey: primaryKey) {
            groups.append(Group(key: primaryKey, isPrimary: true, members: members))
        }
        for key in byKey.keys.sorted() {
            groups.append(Group(key: key, isPrimary: false, members: byKey[key]!))
        }
        return Decision(groups: groups, duplicates: duplicates)
    }
}
