"""A group of three clients through the generated Python bindings, against a
real node: creation, messages, a removal and an admin-only change."""

import pytest

from bindings_ffi import FfiError, FfiPaging, create_client
from conftest import Collector, run


def texts(client, group_id):
    return [m.text for m in client.group_messages(group_id)]


def test_a_group_of_three_reads_its_messages_and_a_removed_member_reads_nothing_new(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        carol = await create_client(node_url, None, b"", None)
        everyone = (alice, bob, carol)

        group_id = await alice.create_group([bob.address(), carol.address()], "team")
        assert len(group_id) == 64
        for client in (bob, carol):
            await client.sync()
        first = await alice.send_group(group_id, "hello team")
        reply = await bob.send_group(group_id, "hi alice")
        for client in everyone:
            await client.sync()

        for client in everyone:
            [group] = client.list_groups()
            assert group.id == group_id and group.name == "team" and group.is_member
            assert group.creator == alice.address() and group.admins == [alice.address()]
            assert sorted(group.members) == sorted(c.address() for c in everyone)
            history = client.group_messages(group_id)
            assert {(m.id, m.text) for m in history} == {(first, "hello team"), (reply, "hi alice")}
            assert all(m.conversation_id == group_id for m in history)
        newest = carol.group_messages(group_id, FfiPaging(limit=1, descending=True))
        assert len(newest) == 1 and newest[0].text in ("hello team", "hi alice")

        await alice.remove_group_members(group_id, [carol.address()])
        for client in everyone:
            await client.sync()
        await alice.send_group(group_id, "after carol")
        for client in everyone:
            await client.sync()

        assert "after carol" in texts(alice, group_id) and "after carol" in texts(bob, group_id)
        assert sorted(texts(carol, group_id)) == ["hello team", "hi alice"]
        [carol_view] = carol.list_groups()
        assert not carol_view.is_member
        [bob_view] = bob.list_groups()
        assert carol.address() not in bob_view.members and bob_view.version >= 1

    run(scenario())


def test_only_an_admin_may_add_members_and_group_errors_are_typed(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        dave = await create_client(node_url, None, b"", None)
        group_id = await alice.create_group([bob.address()], "admins only")
        await bob.sync()

        with pytest.raises(FfiError.Group) as raised:
            await bob.add_group_members(group_id, [dave.address()])
        assert "admins" in str(raised.value)
        [group] = alice.list_groups()
        assert dave.address() not in group.members

        with pytest.raises(FfiError.Group) as raised:
            await alice.send_group("ab" * 32, "hi")
        assert "unknown group" in str(raised.value)
        with pytest.raises(FfiError.Group):
            await alice.send_group("not a group id", "hi")

    run(scenario())


def test_a_group_stream_delivers_the_groups_new_messages(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        group_id = await alice.create_group([bob.address()], "streamed")
        await bob.sync()
        collector = Collector()
        handle = await bob.stream_group(group_id, collector)
        try:
            sent = await alice.send_group(group_id, "live")
            message = await collector.next_text("live")
            assert message.id == sent and message.conversation_id == group_id
        finally:
            handle.end()
        assert handle.is_closed()

    run(scenario())
