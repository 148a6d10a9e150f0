/**
 * The explicit command table oclif loads (package.json oclif.commands). Keys are
 * command ids; with the space topic separator "img:create" is `tsemu img create`.
 */
import ImgCreate from './img/create.js';
import ImgConvert from './img/convert.js';
import ImgCommit from './img/commit.js';
import ImgRebase from './img/rebase.js';
import ImgDd from './img/dd.js';
import ImgBench from './img/bench.js';
import ImgInfo from './img/info.js';
import ImgMeasure from './img/measure.js';
import ImgCompare from './img/compare.js';
import ImgResize from './img/resize.js';
import ImgCheck from './img/check.js';
import ImgSnapshot from './img/snapshot.js';
import ImgAmend from './img/amend.js';
import ImgMap from './img/map.js';
import Io from './io.js';

export const COMMANDS = {
  'img:create': ImgCreate,
  'img:convert': ImgConvert,
  'img:commit': ImgCommit,
  'img:rebase': ImgRebase,
  'img:dd': ImgDd,
  'img:bench': ImgBench,
  'img:info': ImgInfo,
  'img:measure': ImgMeasure,
  'img:compare': ImgCompare,
  'img:resize': ImgResize,
  'img:check': ImgCheck,
  'img:snapshot': ImgSnapshot,
  'img:amend': ImgAmend,
  'img:map': ImgMap,
  io: Io,
};
