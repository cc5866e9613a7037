use multiprocessing::prelude::*;
