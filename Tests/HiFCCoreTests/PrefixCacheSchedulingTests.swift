import XCTest

@testable import HiFCCore

/// The prefix cache's decisions: device hits, flash loads, saves to flash, salts, limits.
final class PrefixCacheSchedulingTests: XCTestCase {
    private func makeScheduler(
        blocks: Int = 32, mode: PreemptionMode = .swapFlash, policy: PrefixWritePolicy = .onEvict, flashBlocks: Int = 64
    ) -> Scheduler {
        SchedulerTests.makeScheduler(
            blocks: blocks, stepTokens: 64, mode: mode, prefixCaching: true, writePolicy: policy, prefixFlashBlocks: flashBlocks)
    }

    /// Runs `id` alone until it has sampled `generate` tokens, completing transfers at once.
    private func runToCompletion(_ id: SequenceID, generate: Int, on scheduler: inout Scheduler) {
        for _ in 0..<200 {
            let plan = scheduler.schedule()
            SchedulerTests.run(plan, on: &scheduler)
            SchedulerTests.complete(plan, on: &scheduler)
            if let sequence = scheduler.sequence(id), sequence.generatedCount >= generate {
                scheduler.finish(id)
                return
            }
        }
        XCTFail("sequence \(id) did not finish")
    }

    func testSecondRequestWithTheSamePromptComputesOnlyItsLastBlock() {
        var scheduler = makeScheduler()
        let prompt = Array(0..<18)
        scheduler.add(id: 1, prompt: prompt, maxTotalTokens: 24)
        runToCompletion(1, generate: 2, on: &scheduler)
        XCTAssertEqual(scheduler.kv.pool.cachedCount, 4, "the first request's 4 full prompt blocks (and none of its partial) stay cached")
        scheduler.add(id: 2, prompt: prompt, maxTotalTokens: 24)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.map(\.start), [16], "blocks 0-3 come from the cache")
        XCTAssertEqual(plan.prefills.map(\.count), [2])
        XCTAssertEqual(scheduler.sequence(2)?.cachedPromptTokens, 16)
        XCTAssertEqual(scheduler.takeEvents().deviceHitTokens, 16)
    }

    func testAPromptThatIsAllCachedStillComputesItsLastToken() {
        var scheduler = makeScheduler()
        scheduler.add(id: 1, prompt: Array(0..<16), maxTotalTokens: 20)
        runToCompletion(1, generate: 1, on: &scheduler)
        scheduler.add(id: 2, prompt: Array(0..<16), maxTotalTokens: 20)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.first?.start, 12, "at least the last token is computed, for its logits")
        XCTAssertEqual(plan.prefills.first?.count, 4)
    }

    func testRunningSequencesShareBlocksAndEachKeepsThemUntilItEnds() {
        var scheduler = makeScheduler()
        scheduler.add(id: 1, prompt: Array(0..<12), maxTotalTokens: 20)
        var plan = scheduler.schedule()
        SchedulerTests.run(plan, on: &scheduler)
        scheduler.add(id: 2, prompt: Array(0..<12) + [99], maxTotalTokens: 20)
        plan = scheduler.schedule()
        SchedulerTests.run(plan, on: &scheduler)
        let shared = Array(scheduler.blockTable(of: 1).prefix(3))
        XCTAssertEqual(Array(scheduler.blockTable(of: 2).prefix(3)), shared)
        for block in shared { XCTAssertEqual(scheduler.kv.pool.refCount(block), 2) }
        scheduler.finish(1)
        for block in shared { XCTAssertEqual(scheduler.kv.pool.refCount(block), 1, "the other sequence still holds it") }
        scheduler.finish(2)
        XCTAssertEqual(scheduler.kv.pool.usedCount, 0)
        XCTAssertEqual(scheduler.kv.pool.cachedFreeCount, 3)
    }

    func testSaltsKeepPrefixesApart() {
        var scheduler = makeScheduler()
        scheduler.add(id: 1, prompt: Array(0..<18), maxTotalTokens: 24, cacheSalt: "tenant-a")
        runToCompletion(1, generate: 1, on: &scheduler)
        scheduler.add(id: 2, prompt: Array(0..<18), maxTotalTokens: 24, cacheSalt: "tenant-b")
        XCTAssertEqual(scheduler.schedule().prefills.first?.start, 0, "another salt finds nothing")
        scheduler.add(id: 3, prompt: Array(0..<18), maxTotalTokens: 24, cacheSalt: "tenant-a")
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.first { $0.sequence == 3 }?.start, 16, "the same salt finds its prefix")
    }

    func testCachedBlocksAreReusedLeastRecentlyFreedFirstAndPrefixesOutliveTails() {
        var pool = BlockPool(capacity: 4)
        let root = PrefixHash.root(namespace: SchedulerTests.namespace)
        let hashes = PrefixHash.chain(Array(0..<16), blockTokens: 4, from: root)
        let blocks = pool.allocate(4)!
        for (block, hash) in zip(blocks, hashes) { XCTAssertTrue(pool.commit(block, content: hash)) }
        pool.release(blocks.reversed())  // the tail first, as KVCacheManager frees
        XCTAssertEqual(pool.freeCount, 4)
        XCTAssertEqual(pool.cachedCount, 4)
        let taken = pool.allocate(1)!
        XCTAssertEqual(taken, [blocks[3]], "the tail block is forgotten first")
        XCTAssertEqual(pool.evictions, 1)
        XCTAssertNil(pool.block(holding: hashes[3]))
        XCTAssertEqual(pool.block(holding: hashes[0]), blocks[0])
    }

    func testAPinnedBlockIsNeverHandedOut() {
        var pool = BlockPool(capacity: 2)
        let blocks = pool.allocate(2)!
        pool.pin(blocks[0])
        pool.release(blocks)
        XCTAssertEqual(pool.freeCount, 1)
        XCTAssertEqual(pool.arrivingCount, 1)
        XCTAssertEqual(pool.allocate(1), [blocks[1]])
        XCTAssertNil(pool.allocate(1), "the pinned block waits for its write")
        pool.unpin(blocks[0])
        XCTAssertEqual(pool.allocate(1), [blocks[0]])
    }

    // MARK: Flash

    /// A scheduler whose flash tier holds the blocks of `prompt`'s full blocks (as after a
    /// restart), with reads and recompute priced by `readBytesPerSecond`.
    private func schedulerWithPrefixOnFlash(_ prompt: [Int], readBytesPerSecond: Double) -> Scheduler {
        var scheduler = makeScheduler()
        let hashes = PrefixHash.chain(prompt, blockTokens: 4, from: PrefixHash.root(namespace: SchedulerTests.namespace))
        scheduler.learnStoredBlocks(hashes.map(\.key), in: .flash, owned: true)
        scheduler.costModel.readBytesPerSecond[.flash] = readBytesPerSecond
        scheduler.costModel.transferLatency = 0
        // Recompute: 1 ms a token.
        scheduler.costModel.steps = StepTimeModel(tokensPerSecond: 1_000)
        return scheduler
    }

    func testPrefixFoundOnFlashIsLoadedWhenThatIsFaster() {
        let prompt = Array(0..<30)
        var scheduler = schedulerWithPrefixOnFlash(prompt, readBytesPerSecond: 1e9)
        scheduler.add(id: 1, prompt: prompt, maxTotalTokens: 40)
        let plan = scheduler.schedule()
        let read = try! XCTUnwrap(plan.reads.first)
        XCTAssertEqual(read.purpose, .loadPrefix)
        XCTAssertEqual(read.keys.count, 7, "every full block but none past the last prompt token")
        XCTAssertTrue(plan.prefills.isEmpty, "the sequence waits for its load")
        XCTAssertEqual(scheduler.sequence(1)?.status, .loading(.flash))
        scheduler.readCompleted(read.id, intactBlocks: 7)
        XCTAssertEqual(scheduler.sequence(1)?.computed, 28)
        XCTAssertEqual(scheduler.sequence(1)?.cachedPromptTokens, 28)
        XCTAssertEqual(scheduler.takeEvents().flashHitTokens, 28)
        let next = scheduler.schedule()
        XCTAssertEqual(next.prefills.first?.start, 28)
        XCTAssertEqual(next.prefills.first?.count, 2)
        XCTAssertEqual(scheduler.kv.pool.cachedCount, 7, "loaded blocks join the device cache")
    }

    func testRequestsOnOneDocumentArrivingTogetherReadItFromFlashOnce() {
        let document = Array(0..<28)
        var scheduler = schedulerWithPrefixOnFlash(document, readBytesPerSecond: 1e9)
        scheduler.add(id: 1, prompt: document + [100, 101], maxTotalTokens: 40)
        scheduler.add(id: 2, prompt: document + [200, 201], maxTotalTokens: 40)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.reads.count, 1, "the second request waits for the first one's load")
        XCTAssertEqual(scheduler.sequence(2)?.status, .waiting)
        XCTAssertTrue(scheduler.schedule().reads.isEmpty, "nor does it load while the first load is in flight")
        scheduler.readCompleted(plan.reads[0].id, intactBlocks: 7)
        let next = scheduler.schedule()
        XCTAssertTrue(next.reads.isEmpty)
        XCTAssertEqual(next.prefills.first { $0.sequence == 2 }?.start, 28, "the loaded blocks are device hits for the second")
        XCTAssertEqual(scheduler.sequence(2)?.cachedPromptTokens, 28)
    }

    func testPrefixOnASlowFlashIsRecomputed() {
        let prompt = Array(0..<30)
        // 7 KiB at 1 MB/s is 7 ms; computing 28 tokens at 1 ms each is 28 ms: load. At 100 kB/s,
        // 70 ms: compute.
        var scheduler = schedulerWithPrefixOnFlash(prompt, readBytesPerSecond: 1e5)
        scheduler.add(id: 1, prompt: prompt, maxTotalTokens: 40)
        let plan = scheduler.schedule()
        XCTAssertTrue(plan.reads.isEmpty)
        XCTAssertEqual(plan.prefills.first?.count, 30)
        let events = scheduler.takeEvents()
        XCTAssertEqual(events.declinedLoads, 1)
        XCTAssertEqual(events.declinedLoadTokens, 28)
    }

    func testADamagedPrefixBlockIsAMissAndTheRestIsComputed() {
        let prompt = Array(0..<30)
        var scheduler = schedulerWithPrefixOnFlash(prompt, readBytesPerSecond: 1e9)
        scheduler.add(id: 1, prompt: prompt, maxTotalTokens: 40)
        let read = scheduler.schedule().reads[0]
        scheduler.readCompleted(read.id, intactBlocks: 3)
        XCTAssertEqual(scheduler.sequence(1)?.computed, 12)
        XCTAssertFalse(scheduler.tiers.isStored(read.keys[3], in: .flash), "the damaged block is not tried again")
        XCTAssertEqual(scheduler.schedule().prefills.first?.start, 12)
    }

    func testOnEvictSavesTheBlocksNextInLineToBeForgotten() {
        var scheduler = makeScheduler(blocks: 8, policy: .onEvict)
        scheduler.add(id: 1, prompt: Array(0..<17), maxTotalTokens: 20)
        var plan = scheduler.schedule()
        XCTAssertTrue(plan.writes.isEmpty, "nothing is evictable while the blocks are used")
        SchedulerTests.run(plan, on: &scheduler)
        scheduler.finish(1)
        plan = scheduler.schedule()
        let save = try! XCTUnwrap(plan.writes.first)
        XCTAssertEqual(save.purpose, .savePrefix)
        XCTAssertEqual(save.keys.count, 4)
        XCTAssertEqual(scheduler.kv.arrivingBlocks, 4, "saved blocks are pinned until written")
        scheduler.writeCompleted(save.id, succeeded: true)
        XCTAssertTrue(save.keys.allSatisfy { scheduler.tiers.isStored($0, in: .flash) })
        XCTAssertTrue(scheduler.schedule().writes.isEmpty, "a block is saved once")
    }

    func testAFailedPrefixSaveIsNotRetriedEveryStep() {
        var scheduler = makeScheduler(blocks: 8, policy: .onEvict)
        scheduler.add(id: 1, prompt: Array(0..<17), maxTotalTokens: 20)
        SchedulerTests.run(scheduler.schedule(), on: &scheduler)
        scheduler.finish(1)
        // A store that refuses every write: count the saves planned over many steps.
        var saves = 0
        for _ in 0..<(PrefixSaveBackoff.shortest * 7) {
            for write in scheduler.schedule().writes where write.purpose == .savePrefix {
                saves += 1
                scheduler.writeCompleted(write.id, succeeded: false)
            }
        }
        // Saves at plans 1, 18 (after a pause of 16) and 51 (after 32); then a pause of 64.
        XCTAssertEqual(saves, 3, "each failure pauses saves, longer each time")
        XCTAssertEqual(scheduler.kv.arrivingBlocks, 0, "the blocks of failed saves are unpinned")
        // Once the store takes writes again, the blocks are saved after the pause.
        var saved = false
        for _ in 0..<(PrefixSaveBackoff.shortest * 8) where !saved {
            for write in scheduler.schedule().writes where write.purpose == .savePrefix {
                scheduler.writeCompleted(write.id, succeeded: true)
                saved = write.keys.allSatisfy { scheduler.tiers.isStored($0, in: .flash) }
            }
        }
        XCTAssertTrue(saved)
    }

    func testWriteThroughSavesEachBlockAsSoonAsItIsFull() {
        var scheduler = makeScheduler(policy: .writeThrough)
        scheduler.add(id: 1, prompt: Array(0..<9), maxTotalTokens: 20)
        let plan = scheduler.schedule()
        SchedulerTests.run(plan, on: &scheduler)
        let save = try! XCTUnwrap(scheduler.schedule().writes.first)
        XCTAssertEqual(save.keys.count, 2, "the two full prompt blocks, while the sequence still runs")
    }

    func testReusedSavesOnlyBlocksTakenFromTheCacheTwice() {
        var scheduler = makeScheduler(blocks: 16, policy: .reused)
        let shared = Array(0..<8)
        for id in SequenceID(1)...3 {
            scheduler.add(id: id, prompt: shared + [Int(id) * 100, 1, 2, 3, 4], maxTotalTokens: 16)
            runToCompletion(id, generate: 1, on: &scheduler)
        }
        let saved = Set(scheduler.schedule().writes.flatMap(\.keys))
        let hashes = PrefixHash.chain(shared, blockTokens: 4, from: PrefixHash.root(namespace: SchedulerTests.namespace))
        XCTAssertEqual(saved, Set(hashes.map(\.key)), "only the two shared blocks were hit twice")
    }

    /// A scheduler with room for 3 prefix blocks on flash, and the save it planned of a finished
    /// request's 5 cached blocks (not yet completed).
    private func saveOverfillingTheFlashRoom() -> (Scheduler, StepPlan.Write) {
        var scheduler = makeScheduler(blocks: 8, policy: .onEvict, flashBlocks: 3)
        scheduler.add(id: 1, prompt: Array(0..<21), maxTotalTokens: 24)
        SchedulerTests.run(scheduler.schedule(), on: &scheduler)
        scheduler.finish(1)
        let save = scheduler.schedule().writes[0]
        return (scheduler, save)
    }

    func testFlashPrefixBlocksStayWithinTheirRoom() {
        var (scheduler, save) = saveOverfillingTheFlashRoom()
        XCTAssertEqual(save.keys.count, 5)
        scheduler.writeCompleted(save.id, succeeded: true)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.deletes.flatMap(\.keys).count, 2, "the least recently used beyond 3 go")
        XCTAssertEqual(scheduler.tiers.prefixBlocks, 3)
        XCTAssertEqual(scheduler.takeEvents().flashPrefixEvictions, 2)
    }

    func testABlockTrimmedFromFlashIsNotSavedAgainUntilReused() {
        var (scheduler, save) = saveOverfillingTheFlashRoom()
        scheduler.writeCompleted(save.id, succeeded: true)
        let trimmed = Set(scheduler.schedule().deletes.flatMap(\.keys))
        XCTAssertEqual(trimmed.count, 2)
        for _ in 0..<20 {
            let plan = scheduler.schedule()
            XCTAssertTrue(plan.writes.isEmpty, "the trimmed blocks, still on the device, are not written again")
            XCTAssertTrue(plan.deletes.isEmpty)
        }
        // The same prompt takes the blocks from the device cache again: now they are worth saving.
        scheduler.add(id: 2, prompt: Array(0..<21), maxTotalTokens: 24)
        runToCompletion(2, generate: 1, on: &scheduler)
        var resaved = Set<BlockKey>()
        for _ in 0..<4 {
            let plan = scheduler.schedule()
            for write in plan.writes {
                resaved.formUnion(write.keys)
                scheduler.writeCompleted(write.id, succeeded: true)
            }
        }
        XCTAssertTrue(trimmed.isSubset(of: resaved), "reused since their trim")
    }

    func testResetForgetsDeviceAndFlashPrefixes() {
        var scheduler = makeScheduler(blocks: 8)
        scheduler.add(id: 1, prompt: Array(0..<9), maxTotalTokens: 12)
        runToCompletion(1, generate: 1, on: &scheduler)
        let save = try! XCTUnwrap(scheduler.schedule().writes.first)
        let reset = scheduler.resetPrefixCache(flash: true)
        XCTAssertEqual(reset.device, 2)
        XCTAssertEqual(scheduler.kv.pool.cachedCount, 0)
        scheduler.add(id: 2, prompt: Array(0..<9), maxTotalTokens: 12)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.first?.start, 0)
        XCTAssertTrue(plan.reads.isEmpty, "flash blocks still being written when the cache was reset are not found either")
        scheduler.writeCompleted(save.id, succeeded: true)
        XCTAssertEqual(Set(scheduler.takeDeletes().flatMap(\.keys)), Set(save.keys), "and they are deleted once written")
    }
}
