//! `World` in this test process, a world of one rank (Open MPI's singleton start, no mpirun): the
//! errors rank 0 gets, and that the world stays usable after each of them. One test function,
//! since MPI initializes once per process.

use multiprocessing_mpi::{Error, World};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Deserializer, Serialize};

fn cube(x: u64) -> u64 {
    x * x * x
}

fn panics_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three is not allowed");
    }
    x
}

/// A value postcard cannot encode: a sequence of unknown length.
struct NoLength;

impl Serialize for NoLength {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_seq(None)?.end()
    }
}

impl<'de> Deserialize<'de> for NoLength {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(NoLength)
    }
}

fn ignore(_: NoLength) -> u8 {
    0
}

#[test]
fn a_world_of_one_maps_reports_errors_and_stays_usable() {
    let world = World::init().expect("MPI_Init");
    assert_eq!((world.rank(), world.size(), world.is_root()), (0, 1, true));
    assert!(matches!(World::init(), Err(Error::AlreadyInitialized)));

    assert_eq!(
        world.map(cube, vec![1, 2, 3, 4, 5]).unwrap(),
        Some(vec![1, 8, 27, 64, 125])
    );
    assert_eq!(world.map(cube, Vec::new()).unwrap(), Some(vec![]));

    match world.map(panics_on_three, 0..10) {
        Err(Error::TaskPanicked {
            index,
            rank,
            message,
        }) => assert_eq!(
            (index, rank, message.as_str()),
            (3, 0, "three is not allowed")
        ),
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
    assert_eq!(world.map(cube, 0..3).unwrap(), Some(vec![0, 1, 8]));

    match world.map(ignore, vec![NoLength]) {
        Err(e @ Error::Encode { .. }) => {
            assert!(matches!(&e, Error::Encode { what, .. } if what == "the inputs"));
            assert!(e.to_string().contains("Serialize"), "{e}");
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    assert_eq!(world.map(cube, 0..3).unwrap(), Some(vec![0, 1, 8]));
}
