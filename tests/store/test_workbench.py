"""The workbench queries (``gateway.store.workbench``) against both stores: the log searched, sorted, paged
and counted with the registration's domain and order reference; third-country counts by month; per-subject
transfers; the access log filtered and paged."""

from __future__ import annotations

from collections import Counter

from gateway.store.base import Store
from gateway.store.workbench import AccessSearch, LogSearch, WorkbenchReads
from tests.store.conftest import make_accepted, make_entry, ts

N = 12


async def seeded(store: Store) -> tuple[WorkbenchReads, list[str]]:
    for n in range(4):
        assert await store.accept(make_accepted(n), ts(0)) is None
    entries = [make_entry(i, registration_id=f"reg-acc-{i // 3:04d}") for i in range(N)]
    await store.append(entries)
    assert isinstance(store, WorkbenchReads)
    return store, [e.id for e in entries]


async def test_log_search_sort_page_and_totals(store: Store) -> None:
    wb, ids = await seeded(store)
    newest = await wb.log_search(LogSearch(), limit=5)
    assert [r.entry.id for r in newest] == ids[::-1][:5]
    assert [r.entry.id for r in await wb.log_search(LogSearch(), offset=5, limit=5)] == ids[::-1][5:10]
    assert newest[0].domain == "exempel3.se" and newest[0].order_ref == "ORD-3"
    assert newest[0].entry.values_ct is not None or newest[0].entry.fields == ()

    by_domain = await wb.log_search(LogSearch(sort="domain", descending=False), limit=N)
    domains = [r.domain for r in by_domain]
    assert domains == sorted(domains)
    by_outcome = await wb.log_search(LogSearch(sort="outcome", descending=True), limit=N)
    assert [r.entry.outcome for r in by_outcome] == sorted((r.entry.outcome for r in by_outcome), reverse=True)

    totals = await wb.log_totals(LogSearch())
    assert sum(totals.values()) == N and totals == dict(Counter(("delivered", "failed", "blocked", "refused")[i % 4]
                                                                for i in range(N)))
    found = await wb.log_search(LogSearch(domain="EXEMPEL2"), limit=N)
    assert {r.domain for r in found} == {"exempel2.se"} and len(found) == 3
    assert [r.entry.id for r in await wb.log_search(LogSearch(order_ref="ORD-1"), limit=N)] == ids[5:2:-1]
    assert await wb.log_search(LogSearch(domain="100%_"), limit=N) == []  # wildcards are literal

    # the instrument in words, as the pages filter on it; third country or not
    assert {r.entry.recipient for r in await wb.log_search(LogSearch(instrument="Art. 45"), limit=N)} == {"escrow-ch"}
    assert {r.entry.recipient for r in await wb.log_search(LogSearch(instrument=""), limit=N)} == {
        "iis", "eurid", "reseller-br"}
    third = await wb.log_totals(LogSearch(third_country=True))
    assert sum(third.values()) == sum(1 for i in range(N) if i % 6 >= 2)
    subj = await wb.log_search(LogSearch(subject_ids=("subj-1", "subj-2")), limit=N)
    assert {r.entry.subject_id for r in subj} == {"subj-1", "subj-2"}
    since = await wb.log_search(LogSearch(since=ts(5), until=ts(8)), limit=N)
    assert [r.entry.id for r in since] == ids[5:8][::-1]


async def test_third_country_counts_and_subjects(store: Store) -> None:
    wb, _ = await seeded(store)
    counts = await wb.transfer_counts(None, None)
    month = ts(0)[:7]
    assert {c.month for c in counts} == {month}
    assert sum(c.count for c in counts) == sum(1 for i in range(N) if i % 6 >= 2)
    labels = {(c.recipient, c.instrument) for c in counts}
    assert labels == {("verisign", "EU-US Data Privacy Framework"), ("escrow-ch", "Art. 45"),
                      ("partner-in", "SCC 2021/914 module 2"), ("reseller-br", "")}
    assert await wb.transfer_counts(ts(10_000), None) == []
    subjects = await wb.subject_transfers(None, None)
    assert sum(s.count for s in subjects) == sum(c.count for c in counts)
    assert {s.domain for s in subjects} <= {f"exempel{n}.se" for n in range(4)}
    assert sum(s.blocked for s in subjects) == sum(c.count for c in counts if c.outcome == "blocked")
    assert subjects == sorted(subjects, key=lambda s: s.last_at, reverse=True)


async def test_access_log_search(store: Store) -> None:
    wb, _ = await seeded(store)
    for i in range(7):
        await store.record_access("petra" if i % 2 else "olle", "subject.name_read" if i < 4 else "rights.extract",
                                  f"obj-{i}", f"subj-{i % 3}", ts(i))
    assert await wb.access_count(AccessSearch()) == 7
    page = await wb.access_search(AccessSearch(), limit=3)
    assert [r["object_id"] for r in page] == ["obj-6", "obj-5", "obj-4"]
    assert [r["object_id"] for r in await wb.access_search(AccessSearch(), offset=6, limit=3)] == ["obj-0"]
    assert await wb.access_count(AccessSearch(actor="petra", action="subject.name_read")) == 2
    assert await wb.access_count(AccessSearch(subject_id="subj-0")) == 3
    assert await wb.access_count(AccessSearch(since=ts(2), until=ts(4))) == 2
    assert await wb.access_facets() == (["olle", "petra"], ["rights.extract", "subject.name_read"])
